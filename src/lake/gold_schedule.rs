//! When the sink refreshes the gold models (`[gold] refresh`: after each commit, the models
//! that read the tables it touched; or on an interval), and what it keeps of each refresh for
//! the logs, the metrics and the status page: failures, vacuums, the models waiting for
//! tables that do not exist yet, and each model's first rows.

use super::gold::{affected, preview, refresh, GoldModel, GoldPreview, GoldVacuum};
use super::storage::LakeStorage;

/// Refreshes models as `[gold] refresh` says, from the sink's loop; a failure is logged, never
/// stops replication.
pub struct GoldSchedule {
    storage: LakeStorage,
    models: Vec<GoldModel>,
    policy: super::config::GoldRefresh,
    vacuum: GoldVacuum,
    last: Option<std::time::Instant>,
    pub refreshes: u64,
    pub failures: u64,
    /// Vacuums of models' tables (every `[gold] vacuum_every_refreshes` versions).
    pub vacuums: u64,
    /// The latest rows of each model refreshed so far (the status page shows them).
    pub previews: Vec<GoldPreview>,
}

impl GoldSchedule {
    pub fn new(
        storage: LakeStorage,
        models: Vec<GoldModel>,
        policy: super::config::GoldRefresh,
        vacuum: GoldVacuum,
    ) -> GoldSchedule {
        GoldSchedule {
            storage,
            models,
            policy,
            vacuum,
            last: None,
            refreshes: 0,
            failures: 0,
            vacuums: 0,
            previews: Vec::new(),
        }
    }

    /// After a batch touched `tables` (`db.table`): refresh what is due.
    pub async fn after_commit(&mut self, tables: &[String]) {
        let due: Vec<GoldModel> = match self.policy {
            super::config::GoldRefresh::OnCommit => affected(&self.models, tables),
            super::config::GoldRefresh::Every(every) => {
                if self.last.is_some_and(|l| l.elapsed() < every) {
                    return;
                }
                self.models.clone()
            }
        };
        if due.is_empty() {
            return;
        }
        self.last = Some(std::time::Instant::now());
        self.refreshes += 1;
        match refresh(&self.storage, &due, self.vacuum).await {
            Ok(outcomes) => {
                self.failures += outcomes
                    .iter()
                    .filter(|o| o.result.is_err() && o.waiting_for.is_empty())
                    .count() as u64;
                self.vacuums += outcomes.iter().filter(|o| o.vacuumed).count() as u64;
                for o in outcomes {
                    let previous = self.previews.iter().find(|p| p.name == o.name);
                    if previous.is_none_or(|p| p.waiting_for != o.waiting_for) {
                        if !o.waiting_for.is_empty() {
                            tracing::warn!(model = %o.name, "waiting for {}: no such table yet, no change of it has been applied (a name misspelt in the model waits here too)", o.waiting_for.join(", "));
                        } else if previous.is_some_and(|p| !p.waiting_for.is_empty()) {
                            tracing::info!(model = %o.name, "the tables it waited for exist now");
                        }
                    }
                    let shown = match &o.result {
                        _ if !o.waiting_for.is_empty() => GoldPreview {
                            name: o.name.clone(),
                            waiting_for: o.waiting_for.clone(),
                            ..GoldPreview::default()
                        },
                        Ok(_) => preview(&self.storage, &o.name, 5)
                            .await
                            .unwrap_or_else(|e| GoldPreview {
                                name: o.name.clone(),
                                error: Some(e.to_string()),
                                ..GoldPreview::default()
                            }),
                        Err(e) => GoldPreview {
                            name: o.name.clone(),
                            error: Some(e.clone()),
                            ..GoldPreview::default()
                        },
                    };
                    match self.previews.iter_mut().find(|p| p.name == o.name) {
                        Some(p) => *p = shown,
                        None => self.previews.push(shown),
                    }
                }
                self.previews.sort_by(|a, b| a.name.cmp(&b.name));
            }
            Err(e) => {
                self.failures += 1;
                tracing::error!("gold refresh: {e}");
            }
        }
    }
}
