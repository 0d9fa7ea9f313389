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

pub const SCENARIOS: &[&str] = &[
    "ecommerce",
    "bookings",
    "purchases",
    "orders_stream",
    "ticket_sales",
];

/// A seeded xorshift64 generator: the same seed (not 0) gives the same workload, benchmark
/// or generated test rows.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.below_u64(n as u64) as usize
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below_u64(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
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
            let n = self.rng.next_u64() % 100_000;
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

/// Selects `db`, or says which file creates it.
async fn use_db(conn: &mut Conn, db: &str, file: &str) -> Result<(), WorkloadError> {
    conn.query_drop(format!("USE {db}"))
        .await
        .map_err(|e| WorkloadError::Setup(format!("{e}: load {file} into the server first")))
}

const EVENTS: [(&str, &str); 6] = [
    ("Summer Concert", "Open Air Arena"),
    ("Jazz Concert", "Blue Hall"),
    ("Derby Match", "City Stadium"),
    ("Cup Final Match", "National Stadium"),
    ("Hamlet Play", "Royal Theatre"),
    ("Comedy Night", "Corner Club"),
];
const PAY_METHODS: [&str; 5] = [
    "credit_card",
    "debit_card",
    "paypal",
    "apple_pay",
    "bank_transfer",
];

/// Bookings with a JSON array of seats; a payment 0-180 s after most of them.
struct Bookings {
    rng: Rng,
}

impl Bookings {
    async fn step(&mut self, conn: &mut Conn) -> Result<u64, WorkloadError> {
        let mut tx = conn.start_transaction(TxOpts::default()).await?;
        let event = self.rng.below(EVENTS.len());
        let (name, location) = EVENTS[event];
        let customer = 1 + self.rng.below(500) as i64;
        let seats: Vec<serde_json::Value> = (0..1 + self.rng.below(4))
            .map(|i| {
                serde_json::json!({
                    "seat_number": format!("{}{}", (b'A' + self.rng.below(10) as u8) as char, 1 + i + self.rng.below(30)),
                    "price": (20 + self.rng.below(180)) as f64 + 0.5,
                })
            })
            .collect();
        let total: f64 = seats
            .iter()
            .map(|s| s["price"].as_f64().unwrap_or(0.0))
            .sum();
        tx.exec_drop(
            "INSERT INTO bookings (booking_time, customer_id, customer_name, customer_email, event_id, event_name, event_location, seats) VALUES (NOW(3), ?, ?, ?, ?, ?, ?, ?)",
            (
                customer,
                format!("Customer {customer}"),
                format!("c{customer}@example.com"),
                event as i64 + 1,
                name,
                location,
                serde_json::Value::Array(seats).to_string(),
            ),
        )
        .await?;
        let order = tx.last_insert_id().unwrap_or(0);
        let mut changes = 1;
        if self.rng.below(10) < 8 {
            // 0-180 s after the booking: those past 2 minutes do not match in the fact table.
            let delay = self.rng.below(181) as i64;
            let method = PAY_METHODS[self.rng.below(PAY_METHODS.len())];
            let status = if self.rng.below(20) == 0 {
                "failed"
            } else {
                "completed"
            };
            tx.exec_drop(
                "INSERT INTO payments (order_id, payment_time, amount, payment_method, payment_status) SELECT order_id, booking_time + INTERVAL ? SECOND, ?, ?, ? FROM bookings WHERE order_id = ?",
                (delay, format!("{total:.2}"), method, status, order),
            )
            .await?;
            changes += 1;
        }
        tx.commit().await?;
        Ok(changes)
    }
}

const SEGMENTS: [&str; 3] = ["consumer", "corporate", "small_business"];
const CATEGORIES: [&str; 5] = ["Electronics", "Books", "Garden", "Toys", "Groceries"];

/// Purchase events over the last week; about 5% fail validation.
struct Purchases {
    rng: Rng,
}

impl Purchases {
    async fn step(&mut self, conn: &mut Conn) -> Result<u64, WorkloadError> {
        let quantity = 1 + self.rng.below(5) as i64;
        let cents = 199 + self.rng.below(20_000) as i64;
        let discount = if self.rng.below(4) == 0 {
            cents / 10
        } else {
            0
        };
        let mut total = quantity * cents - discount;
        let mut quantity_out = quantity;
        match self.rng.below(40) {
            0 => quantity_out = -quantity,
            1 => total += 100,
            _ => {}
        }
        conn.exec_drop(
            "INSERT INTO purchase_events (ts, customer, segment, category, quantity, unit_price, discount, total) VALUES (NOW(3) - INTERVAL ? HOUR, ?, ?, ?, ?, ? / 100, ? / 100, ? / 100)",
            (
                self.rng.below(24 * 7) as i64,
                format!("cust{}", self.rng.below(300)),
                SEGMENTS[self.rng.below(SEGMENTS.len())],
                CATEGORIES[self.rng.below(CATEGORIES.len())],
                quantity_out,
                cents,
                discount,
                total,
            ),
        )
        .await?;
        Ok(1)
    }
}

/// Orders created with skewed amounts, then paid, cancelled or refunded.
struct OrdersStream {
    rng: Rng,
    open: Vec<u64>,
}

impl OrdersStream {
    async fn step(&mut self, conn: &mut Conn) -> Result<u64, WorkloadError> {
        if self.open.is_empty() || self.rng.below(2) == 0 {
            // Mostly small orders, a tail above 2,000 / 3,000 / 5,000.
            let amount = match self.rng.below(20) {
                0 => 5000 + self.rng.below(5000),
                1 => 3000 + self.rng.below(2000),
                2 => 2000 + self.rng.below(1000),
                _ => 5 + self.rng.below(500),
            };
            conn.exec_drop(
                "INSERT INTO orders (customer_id, amount, status, created_at, updated_at) VALUES (?, ?, 'created', NOW(3), NOW(3))",
                (1 + self.rng.below(200) as i64, amount as i64),
            )
            .await?;
            self.open.push(conn.last_insert_id().unwrap_or(0));
        } else {
            let i = self.rng.below(self.open.len());
            let order = self.open.swap_remove(i);
            let status = match self.rng.below(10) {
                0 => "cancelled",
                1 => "refunded",
                _ => "paid",
            };
            conn.exec_drop(
                "UPDATE orders SET status = ?, updated_at = NOW(3) WHERE order_id = ?",
                (status, order),
            )
            .await?;
        }
        Ok(1)
    }
}

/// Users join the queue (arrivals spread over the last hours), are served after a wait, and
/// buy 1-4 tickets or leave.
struct TicketSales {
    rng: Rng,
    waiting: Vec<u64>,
}

impl TicketSales {
    async fn step(&mut self, conn: &mut Conn) -> Result<u64, WorkloadError> {
        if self.waiting.len() < 5 || self.rng.below(2) == 0 {
            conn.exec_drop(
                "INSERT INTO queue (arrived_at, status) VALUES (NOW(3) - INTERVAL ? SECOND, 'waiting')",
                (self.rng.below(6 * 3600) as i64,),
            )
            .await?;
            self.waiting.push(conn.last_insert_id().unwrap_or(0));
        } else {
            let i = self.rng.below(self.waiting.len());
            let user = self.waiting.swap_remove(i);
            let wait = 10 + self.rng.below(900) as i64;
            if self.rng.below(5) == 0 {
                conn.exec_drop(
                    "UPDATE queue SET served_at = arrived_at + INTERVAL ? SECOND, status = 'left' WHERE user_id = ?",
                    (wait, user),
                )
                .await?;
            } else {
                conn.exec_drop(
                    "UPDATE queue SET served_at = arrived_at + INTERVAL ? SECOND, tickets = ?, status = 'bought' WHERE user_id = ?",
                    (wait, 1 + self.rng.below(4) as i64, user),
                )
                .await?;
            }
        }
        Ok(1)
    }
}

enum Scenario {
    Ecommerce(Box<Ecommerce>),
    Bookings(Bookings),
    Purchases(Purchases),
    OrdersStream(OrdersStream),
    TicketSales(TicketSales),
}

impl Scenario {
    async fn load(conn: &mut Conn, name: &str) -> Result<Scenario, WorkloadError> {
        let rng = Rng(0x5EED_1234_ABCD);
        Ok(match name {
            "ecommerce" => Scenario::Ecommerce(Box::new(Ecommerce::load(conn, rng.0).await?)),
            "bookings" => {
                use_db(conn, "bookings", "sql/bookings.sql").await?;
                Scenario::Bookings(Bookings { rng })
            }
            "purchases" => {
                use_db(conn, "purchases", "sql/purchases.sql").await?;
                Scenario::Purchases(Purchases { rng })
            }
            "orders_stream" => {
                use_db(conn, "orders_stream", "sql/orders_stream.sql").await?;
                Scenario::OrdersStream(OrdersStream {
                    rng,
                    open: Vec::new(),
                })
            }
            "ticket_sales" => {
                use_db(conn, "ticket_sales", "sql/ticket_sales.sql").await?;
                Scenario::TicketSales(TicketSales {
                    rng,
                    waiting: Vec::new(),
                })
            }
            other => {
                return Err(WorkloadError::UnknownScenario(
                    other.to_string(),
                    SCENARIOS.join(", "),
                ))
            }
        })
    }

    async fn step(&mut self, conn: &mut Conn) -> Result<u64, WorkloadError> {
        match self {
            Scenario::Ecommerce(w) => w.step(conn).await,
            Scenario::Bookings(w) => w.step(conn).await,
            Scenario::Purchases(w) => w.step(conn).await,
            Scenario::OrdersStream(w) => w.step(conn).await,
            Scenario::TicketSales(w) => w.step(conn).await,
        }
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
    let mut workload = Scenario::load(conn, scenario).await?;
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
