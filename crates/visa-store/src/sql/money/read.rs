//! The money path's records read back: one execution or a page of them, filtered, and the
//! ledger audit's facts (`crate::verify`).

use super::{EXECUTION_COLUMNS, execution_from_row};
use crate::StoreResult;
use crate::model::*;
use crate::sql::Value;
use crate::sql::db::{Db, Row};
use visa_core::pagination::{Page, PageRequest};

fn filter_sql(filter: &ExecutionFilter) -> (String, Vec<Value>) {
    let mut clauses = vec![];
    let mut values = vec![];
    if let Some(account_id) = filter.account_id {
        values.push(Value::Int(account_id.get()));
        clauses.push(format!("account_id = ?{}", values.len()));
    }
    if let Some(key_id) = filter.key_id {
        values.push(Value::Int(key_id.get()));
        clauses.push(format!("key_id = ?{}", values.len()));
    }
    if let Some(state) = filter.state {
        values.push(Value::Text(state.as_str().into()));
        clauses.push(format!("state = ?{}", values.len()));
    }
    if let Some(from) = filter.created_from {
        values.push(Value::Int(crate::columns::to_db(from)));
        clauses.push(format!("created_at >= ?{}", values.len()));
    }
    if let Some(before) = filter.created_before {
        values.push(Value::Int(crate::columns::to_db(before)));
        clauses.push(format!("created_at < ?{}", values.len()));
    }
    (clauses.iter().map(|c| format!(" AND {c}")).collect(), values)
}

pub(crate) fn get(conn: &dyn Db, filter: &ExecutionFilter, public_id: &str) -> StoreResult<Option<ExecutionRecord>> {
    let (clauses, mut values) = filter_sql(filter);
    values.push(Value::Text(public_id.to_owned()));
    let sql = format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE public_id = ?{}{clauses}", values.len());
    conn.query_row(&sql, &values, execution_from_row)
}

pub(crate) fn list(conn: &dyn Db, filter: &ExecutionFilter, page: PageRequest) -> StoreResult<Page<ExecutionRecord>> {
    let (clauses, mut values) = filter_sql(filter);
    let (op, order, cursor) = page.id_bounds();
    values.push(Value::Int(cursor));
    let cursor_param = values.len();
    values.push(Value::Int(i64::from(page.fetch_limit())));
    let sql = format!(
        "SELECT {EXECUTION_COLUMNS} FROM executions WHERE id {op} ?{cursor_param}{clauses} ORDER BY id {order} LIMIT ?{}",
        values.len()
    );
    let rows = conn.query_map(&sql, &values, execution_from_row)?;
    Ok(Page::cut(&page, rows, |e| e.id))
}

fn rollup(r: &Row) -> StoreResult<crate::verify::Rollup> {
    Ok(((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?), (r.get(5)?, r.get(6)?)))
}

/// What `verify::check` recomputes, read in the caller's snapshot.
pub(crate) fn verify(conn: &dyn Db) -> StoreResult<Vec<String>> {
    use crate::verify::sql;
    let one = |r: &Row| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?));
    let facts = crate::verify::LedgerFacts {
        by_account: conn.query_map(&sql::by_account(), &[], one)?,
        by_key: conn.query_map(&sql::by_key(), &[], one)?,
        by_key_day: conn
            .query_map(&sql::by_key_day(), &[], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?, r.get(3)?, r.get(4)?)))?,
        by_end_user_day: conn.query_map(&sql::by_end_user_day(), &[], |r| {
            Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get(3)?, r.get(4)?, r.get(5)?))
        })?,
        by_execution: conn.query_map(&sql::by_execution(), &[], one)?,
        accounts: conn.query_map(sql::ACCOUNTS, &[], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?,
        key_totals: conn.query_map(sql::KEY_TOTALS, &[], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?,
        key_days: conn.query_map(sql::KEY_DAYS, &[], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?,
        end_user_days: conn
            .query_map(sql::END_USER_DAYS, &[], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?,
        end_user_totals: conn
            .query_map(sql::END_USER_TOTALS, &[], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?,
        executions: conn
            .query_map(sql::EXECUTIONS, &[], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?,
        rollups: conn.query_map(sql::ROLLUPS, &[], rollup)?,
        rollups_from_executions: conn.query_map(sql::ROLLUPS_FROM_EXECUTIONS, &[], rollup)?,
        dangling: conn.query_map(sql::DANGLING, &[], |r| Ok((r.get(0)?, r.get(1)?)))?,
    };
    Ok(crate::verify::check(&facts))
}
