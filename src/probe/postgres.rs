//! PostgreSQL probe: connect and `SELECT 1`.

use std::time::Instant;

use sqlx::Connection;

use super::{finish, root_cause, timed_out, ProbeReport};
use crate::config::ServiceConfig;

pub async fn probe(target: &ServiceConfig) -> ProbeReport {
    let started = Instant::now();
    let check = async {
        let mut conn = sqlx::PgConnection::connect(target.url.as_str()).await?;
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await?;
        let _ = conn.close().await;
        Ok::<i32, sqlx::Error>(one)
    };
    match tokio::time::timeout(target.timeout, check).await {
        Ok(Ok(1)) => finish(target, started.elapsed(), None),
        Ok(Ok(other)) => ProbeReport::down(started.elapsed(), format!("SELECT 1 returned {other}")),
        // sqlx's messages name the failure, never the password.
        Ok(Err(e)) => ProbeReport::down(started.elapsed(), format!("postgres: {}", root_cause(&e))),
        Err(_) => timed_out(target, started),
    }
}
