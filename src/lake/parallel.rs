//! A bounded parallel runner for per-file work (key scans, row reads): one task per item, as
//! many at a time as there are cores.

use super::LakeError;

/// Runs the task `work` makes of each item, as many at a time as there are cores, and gathers
/// their results (in the order they finish).
pub(super) async fn on_every_core<I, F, T, R>(
    name: &str,
    items: I,
    work: F,
) -> Result<Vec<R>, LakeError>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> T,
    T: std::future::Future<Output = Result<R, LakeError>> + Send + 'static,
    R: Send + 'static,
{
    use futures_util::StreamExt;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut tasks = futures_util::stream::iter(items)
        .map(work)
        .map(tokio::spawn)
        .buffer_unordered(cores);
    let mut out = Vec::new();
    while let Some(done) = tasks.next().await {
        out.push(done.map_err(|e| LakeError::storage(name, e))??);
    }
    Ok(out)
}
