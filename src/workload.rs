//! `binlake generate`: workloads that write to the source database at a steady rate of row
//! changes per second, so a pipeline can be watched, measured and tested end to end. It sits
//! beside the pipeline, not in it: it only talks SQL to the server `[source]` names.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, TxOpts};

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("generate: {0}")]
    Sql(#[from] mysql_async::Error),
    #[error("generate: unknown scenario {0:?}; known: {1}")]
    UnknownScenario(String, String),
    #[error("generate: {0}")]
    Setup(String),
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadStats {
    pub transactions: u64,
    pub row_changes: u64,
}

pub const SCENARIOS: &[&str] = &["ecommerce"];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The online_store workload: orders placed, paid, shipped, delivered, cancelled and refunded;
/// customers created, edited and deleted.
struct Ecommerce {
    rng: Rng,
    products: Vec<(i64, String)>,
    customers: Vec<i64>,
    /// Customers with orders (never deleted: their orders refer to them).
    buyers: std::collections::HashSet<i64>,
    placed: Vec<i64>,
    paid: Vec<(i64, String)>,
    shipped: Vec<i64>,
    delivered: Vec<(i64, String)>,
}

const METHODS: [&str; 4] = ["card", "paypal", "bank_transfer", "gift_card"];
const CITIES: [&str; 8] = [
    "Lisbon", "Oslo", "Austin", "Osaka", "Nairobi", "Lima", "Graz", "Perth",
];

fn take<T>(rng: &mut Rng, v: &mut Vec<T>) -> Option<T> {
    if v.is_empty() {
        None
    } else {
        let i = rng.below(v.len());
        Some(v.swap_remove(i))
    }
}

impl Ecommerce {
    async fn load(conn: &mut Conn, seed: u64) -> Result<Ecommerce, WorkloadError> {
        conn.query_drop("USE online_store").await.map_err(|e| {
            WorkloadError::Setup(format!(
                "{e}: load sql/online_store.sql into the server first"
            ))
        })?;
        let products: Vec<(i64, String)> = conn
            .query("SELECT ProductID, CAST(Price AS CHAR) FROM Products")
            .await?;
        if products.is_empty() {
            return Err(WorkloadError::Setup(
                "online_store.Products is empty: load sql/online_store.sql".into(),
            ));
        }
        let customers: Vec<i64> = conn.query("SELECT CustomerID FROM Customers").await?;
        let buyers: Vec<i64> = conn.query("SELECT DISTINCT CustomerID FROM Orders").await?;
        let orders: Vec<(i64, String, String)> = conn
            .query("SELECT OrderID, CAST(Status AS CHAR), CAST(Total AS CHAR) FROM Orders")
            .await?;
        let mut w = Ecommerce {
            rng: Rng(seed | 1),
            products,
            customers,
            buyers: buyers.into_iter().collect(),
            placed: Vec::new(),
            paid: Vec::new(),
            shipped: Vec::new(),
            delivered: Vec::new(),
        };
        for (id, status, total) in orders {
            match status.as_str() {
                "placed" => w.placed.push(id),
                "paid" => w.paid.push((id, total)),
                "shipped" => w.shipped.push(id),
                "delivered" => w.delivered.push((id, total)),
                _ => {}
            }
        }
        Ok(w)
    }

    /// Runs one business action in one transaction; returns the row changes it made.
    async fn step(&mut self, conn: &mut Conn) -> Result<u64, WorkloadError> {
        let roll = self.rng.below(100);
        let mut tx = conn.start_transaction(TxOpts::default()).await?;
        let changes = if roll < 40 || self.customers.is_empty() {
            if self.customers.is_empty() {
                0
            } else {
                let customer = self.customers[self.rng.below(self.customers.len())];
                tx.exec_drop(
                    "INSERT INTO Orders (CustomerID, OrderDate, Status) VALUES (?, NOW(3), 'placed')",
                    (customer,),
                )
                .await?;
                let order = tx.last_insert_id().unwrap_or(0) as i64;
                let items = 1 + self.rng.below(3);
                for _ in 0..items {
                    let (product, price) =
                        self.products[self.rng.below(self.products.len())].clone();
                    let quantity = 1 + self.rng.below(4) as i64;
                    tx.exec_drop(
                        "INSERT INTO OrderItems (OrderID, ProductID, Quantity, UnitPrice) VALUES (?, ?, ?, ?)",
                        (order, product, quantity, price),
                    )
                    .await?;
                }
                tx.exec_drop(
                    "UPDATE Orders SET Total = (SELECT SUM(Quantity * UnitPrice) FROM OrderItems WHERE OrderID = ?) WHERE OrderID = ?",
                    (order, order),
                )
                .await?;
                self.buyers.insert(customer);
                self.placed.push(order);
                2 + items as u64
            }
        } else if roll < 65 {
            match take(&mut self.rng, &mut self.placed) {
                Some(order) => {
                    let method = METHODS[self.rng.below(METHODS.len())];
                    tx.exec_drop(
                        "INSERT INTO Payments (OrderID, Amount, Method, Status, PaidAt) SELECT OrderID, Total, ?, 'captured', NOW(3) FROM Orders WHERE OrderID = ?",
                        (method, order),
                    )
                    .await?;
                    tx.exec_drop(
                        "UPDATE Orders SET Status = 'paid' WHERE OrderID = ?",
                        (order,),
                    )
                    .await?;
                    let total: Option<String> = tx
                        .exec_first(
                            "SELECT CAST(Total AS CHAR) FROM Orders WHERE OrderID = ?",
                            (order,),
                        )
                        .await?;
                    self.paid.push((order, total.unwrap_or_default()));
                    2
                }
                None => 0,
            }
        } else if roll < 80 {
            if self.rng.below(2) == 0 {
                match take(&mut self.rng, &mut self.paid) {
                    Some((order, _)) => {
                        tx.exec_drop(
                            "UPDATE Orders SET Status = 'shipped' WHERE OrderID = ?",
                            (order,),
                        )
                        .await?;
                        self.shipped.push(order);
                        1
                    }
                    None => 0,
                }
            } else {
                match take(&mut self.rng, &mut self.shipped) {
                    Some(order) => {
                        tx.exec_drop(
                            "UPDATE Orders SET Status = 'delivered' WHERE OrderID = ?",
                            (order,),
                        )
                        .await?;
                        let total: Option<String> = tx
                            .exec_first(
                                "SELECT CAST(Total AS CHAR) FROM Orders WHERE OrderID = ?",
                                (order,),
                            )
                            .await?;
                        self.delivered.push((order, total.unwrap_or_default()));
                        1
                    }
                    None => 0,
                }
            }
        } else if roll < 85 {
            // Cancel a placed order, or a paid one (its payment is refunded).
            let reason = 1 + self.rng.below(3) as i64;
            if let Some(order) = take(&mut self.rng, &mut self.placed) {
                tx.exec_drop(
                    "UPDATE Orders SET Status = 'cancelled', ReasonID = ? WHERE OrderID = ?",
                    (reason, order),
                )
                .await?;
                1
            } else if let Some((order, total)) = take(&mut self.rng, &mut self.paid) {
                tx.exec_drop(
                    "UPDATE Orders SET Status = 'cancelled', ReasonID = ? WHERE OrderID = ?",
                    (reason, order),
                )
                .await?;
                tx.exec_drop(
                    "INSERT INTO Payments (OrderID, Amount, Method, Status, PaidAt) VALUES (?, -?, 'card', 'refunded', NOW(3))",
                    (order, total),
                )
                .await?;
                2
            } else {
                0
            }
        } else if roll < 89 {
            match take(&mut self.rng, &mut self.delivered) {
                Some((order, total)) => {
                    let reason = 4 + self.rng.below(3) as i64;
                    tx.exec_drop(
                        "UPDATE Orders SET Status = 'refunded', ReasonID = ? WHERE OrderID = ?",
                        (reason, order),
                    )
                    .await?;
                    tx.exec_drop(
                        "INSERT INTO Payments (OrderID, Amount, Method, Status, PaidAt) VALUES (?, -?, 'card', 'refunded', NOW(3))",
                        (order, total),
                    )
                    .await?;
                    2
                }
                None => 0,
            }
        } else if roll < 95 {
            let customer = self.customers[self.rng.below(self.customers.len())];
            let city = CITIES[self.rng.below(CITIES.len())];
            tx.exec_drop(
                "UPDATE Customers SET City = ?, Email = CONCAT('c', CustomerID, '.', ?, '@example.com') WHERE CustomerID = ?",
                (city, self.rng.below(1000), customer),
            )
            .await?;
            1
        } else if roll < 98 {
            let n = self.rng.next() % 100_000;
            let city = CITIES[self.rng.below(CITIES.len())];
            tx.exec_drop(
                "INSERT INTO Customers (Name, Email, Country, City) VALUES (?, ?, 'Portugal', ?)",
                (format!("Customer {n}"), format!("new{n}@example.com"), city),
            )
            .await?;
            self.customers.push(tx.last_insert_id().unwrap_or(0) as i64);
            1
        } else {
            // Only customers who never ordered are deleted.
            let candidates: Vec<usize> = (0..self.customers.len())
                .filter(|&i| !self.buyers.contains(&self.customers[i]))
                .collect();
            if candidates.is_empty() || self.customers.len() < 4 {
                0
            } else {
                let i = candidates[self.rng.below(candidates.len())];
                let customer = self.customers.swap_remove(i);
                tx.exec_drop("DELETE FROM Customers WHERE CustomerID = ?", (customer,))
                    .await?;
                1
            }
        };
        tx.commit().await?;
        Ok(changes)
    }
}

/// Runs `scenario` at `rate` row changes per second for `duration` (or until `stop`).
pub async fn generate(
    conn: &mut Conn,
    scenario: &str,
    rate: u64,
    duration: Duration,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<WorkloadStats, WorkloadError> {
    if !SCENARIOS.contains(&scenario) {
        return Err(WorkloadError::UnknownScenario(
            scenario.to_string(),
            SCENARIOS.join(", "),
        ));
    }
    let mut workload = Ecommerce::load(conn, 0x5EED_1234_ABCD).await?;
    let started = Instant::now();
    let mut stats = WorkloadStats::default();
    let rate = rate.max(1) as f64;
    while started.elapsed() < duration && !stop.load(std::sync::atomic::Ordering::Relaxed) {
        // Ahead of schedule: wait until the rate catches up.
        let due = Duration::from_secs_f64(stats.row_changes as f64 / rate);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait.min(Duration::from_millis(100))).await;
            continue;
        }
        let n = workload.step(conn).await?;
        if n > 0 {
            stats.transactions += 1;
            stats.row_changes += n;
        }
    }
    Ok(stats)
}
