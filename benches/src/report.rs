//! The results: per measurement and client the runs' figures, their medians, the ratios
//! ours/rdkafka and transactional/at-least-once, as a table or as JSON.

use serde_json::{json, Value};

/// The clients, in table order.
pub(crate) const CLIENTS: [&str; 3] = ["wire", "rskafka", "rdkafka"];

/// One measurement (a table row): records per second per client and run.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) name: &'static str,
    /// Per client (in [`CLIENTS`] order), the runs' figures.
    pub(crate) runs: [Vec<f64>; 3],
}

impl Row {
    pub(crate) fn new(name: &'static str) -> Self {
        Row {
            name,
            runs: Default::default(),
        }
    }

    fn median(&self, client: usize) -> Option<f64> {
        median(self.runs[client].clone())
    }
}

pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn rate(v: Option<f64>) -> String {
    v.map_or("n/a".to_owned(), |x| format!("{}", x.round() as u64))
}

fn times(v: Option<f64>) -> String {
    v.map_or("n/a".to_owned(), |x| format!("{x:.2}"))
}

/// transactional/at-least-once per client, when both rows were measured.
fn txn_over_alo(rows: &[Row]) -> Option<[Option<f64>; 3]> {
    let alo = rows.iter().find(|r| r.name == "at-least-once")?;
    let txn = rows.iter().find(|r| r.name == "transactional")?;
    Some([0, 1, 2].map(|c| ratio(txn.median(c), alo.median(c))))
}

/// The table: medians in records per second and the ratio wire/rdkafka per row, then
/// transactional/at-least-once per client.
pub(crate) fn table(rows: &[Row], header: &str) -> String {
    let mut out = format!("{header}\n");
    out.push_str(&format!(
        "{:<22} {:>12} {:>12} {:>12} {:>14}\n",
        "median rec/s", "wire", "rskafka", "rdkafka", "wire/rdkafka"
    ));
    for r in rows {
        out.push_str(&format!(
            "{:<22} {:>12} {:>12} {:>12} {:>14}\n",
            r.name,
            rate(r.median(0)),
            rate(r.median(1)),
            rate(r.median(2)),
            times(ratio(r.median(0), r.median(2))),
        ));
    }
    if let Some([w, s, d]) = txn_over_alo(rows) {
        out.push_str(&format!(
            "{:<22} {:>12} {:>12} {:>12}\n",
            "transactional/alo",
            times(w),
            times(s),
            times(d)
        ));
    }
    out
}

/// The same as JSON, with every run's figure.
pub(crate) fn json(rows: &[Row], settings: Value) -> Value {
    let workloads: Vec<Value> = rows
        .iter()
        .map(|r| {
            let per = |f: &dyn Fn(usize) -> Value| -> Value {
                CLIENTS
                    .iter()
                    .enumerate()
                    .map(|(i, c)| ((*c).to_owned(), f(i)))
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            };
            json!({
                "name": r.name,
                "unit": "records/s",
                "runs": per(&|i| json!(r.runs[i])),
                "median": per(&|i| json!(r.median(i))),
                "wire_over_rdkafka": ratio(r.median(0), r.median(2)),
            })
        })
        .collect();
    let txn = txn_over_alo(rows).map(|[w, s, d]| json!({"wire": w, "rskafka": s, "rdkafka": d}));
    json!({
        "settings": settings,
        "workloads": workloads,
        "transactional_over_at_least_once": txn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn ratios_in_table_and_json() {
        let mut alo = Row::new("at-least-once");
        alo.runs[0] = vec![100.0, 200.0, 300.0];
        alo.runs[2] = vec![50.0, 100.0, 150.0];
        let mut txn = Row::new("transactional");
        txn.runs[0] = vec![100.0, 100.0, 100.0];
        let rows = [alo, txn];
        let t = table(&rows, "h");
        assert!(t.contains("at-least-once"), "{t}");
        assert!(t.contains("2.00"), "wire/rdkafka of at-least-once: {t}");
        assert!(t.contains("0.50"), "transactional/alo of wire: {t}");
        let j = json(&rows, json!({}));
        assert_eq!(j["workloads"][0]["wire_over_rdkafka"], json!(2.0));
        assert_eq!(j["transactional_over_at_least_once"]["wire"], json!(0.5));
        assert_eq!(
            j["transactional_over_at_least_once"]["rdkafka"],
            Value::Null
        );
        assert_eq!(j["workloads"][1]["median"]["rskafka"], Value::Null);
    }
}
