//! The `weir judge` input: groups, thresholds and metrics with their samples, read from
//! JSON with every problem reported at its place (`line:column` for syntax, a JSON path
//! such as `metrics[2].baseline[5]` for content).

use serde_json::{Map, Value};

use super::InputError;
use super::settings::{MetricSettings, Test};

/// The most trials a side of a proportions test may have.
pub const MAX_TRIALS: u64 = 1_000_000_000_000;

/// Pass and marginal thresholds on the total score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub pass: f64,
    pub marginal: f64,
}

/// Success and trial counts for the proportions test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub successes: u64,
    pub total: u64,
}

/// What is compared.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricData {
    /// Points per interval; NaN is a missing point.
    Samples {
        canary: Vec<f64>,
        baseline: Vec<f64>,
    },
    Proportions {
        canary: Counts,
        baseline: Counts,
    },
}

/// One metric to judge.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricInput {
    pub name: String,
    pub group: String,
    pub settings: MetricSettings,
    pub data: MetricData,
}

/// Everything a judgement needs.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeInput {
    /// Group weights, in the order given.
    pub groups: Vec<(String, f64)>,
    pub thresholds: Thresholds,
    pub metrics: Vec<MetricInput>,
}

/// Parses the input file's text.
pub fn parse(text: &str) -> Result<JudgeInput, InputError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        InputError::at(
            format!("{}:{}", e.line(), e.column()),
            e.to_string()
                .split(" at line ")
                .next()
                .unwrap_or("invalid JSON")
                .to_owned(),
        )
    })?;
    from_value(&value)
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, InputError> {
    v.as_object()
        .ok_or_else(|| InputError::at(path, "expected an object"))
}

/// Reads group weights: `{"name": weight, ...}`, each in [0, 100], summing to at most 100.
pub fn groups_from(v: Option<&Value>, path: &str) -> Result<Vec<(String, f64)>, InputError> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let mut groups = Vec::new();
    for (name, w) in object(v, path)? {
        let weight = w
            .as_f64()
            .filter(|w| (0.0..=100.0).contains(w))
            .ok_or_else(|| {
                InputError::at(format!("{path}.{name}"), "expected a weight from 0 to 100")
            })?;
        groups.push((name.clone(), weight));
    }
    let sum: f64 = groups.iter().map(|(_, w)| w).sum();
    if sum > 100.0 + 1e-9 {
        return Err(InputError::at(
            path,
            format!("the group weights add up to {sum}, more than 100"),
        ));
    }
    Ok(groups)
}

/// Reads `{"pass": 95, "marginal": 75}`; both default to Kayenta's usual 95 and 75.
pub fn thresholds_from(v: Option<&Value>, path: &str) -> Result<Thresholds, InputError> {
    let mut t = Thresholds {
        pass: 95.0,
        marginal: 75.0,
    };
    if let Some(v) = v {
        let obj = object(v, path)?;
        for (key, slot) in [("pass", &mut t.pass), ("marginal", &mut t.marginal)] {
            if let Some(x) = obj.get(key) {
                *slot = x
                    .as_f64()
                    .filter(|x| (0.0..=100.0).contains(x))
                    .ok_or_else(|| {
                        InputError::at(format!("{path}.{key}"), "expected a score from 0 to 100")
                    })?;
            }
        }
    }
    if t.marginal > t.pass {
        return Err(InputError::at(
            format!("{path}.marginal"),
            format!(
                "the marginal threshold {} is above the pass threshold {}",
                t.marginal, t.pass
            ),
        ));
    }
    Ok(t)
}

fn samples(v: Option<&Value>, path: &str) -> Result<Vec<f64>, InputError> {
    let v = v.ok_or_else(|| {
        InputError::at(
            path,
            "missing: expected a list of numbers (null for a missing point)",
        )
    })?;
    let list = v.as_array().ok_or_else(|| {
        InputError::at(
            path,
            "expected a list of numbers (null for a missing point)",
        )
    })?;
    list.iter()
        .enumerate()
        .map(|(i, x)| match x {
            Value::Null => Ok(f64::NAN),
            Value::Number(n) => n
                .as_f64()
                .ok_or_else(|| InputError::at(format!("{path}[{i}]"), "not a number")),
            _ => Err(InputError::at(
                format!("{path}[{i}]"),
                "expected a number or null",
            )),
        })
        .collect()
}

fn count(obj: &Map<String, Value>, path: &str, key: &str) -> Result<u64, InputError> {
    obj.get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| InputError::at(format!("{path}.{key}"), "expected a whole number >= 0"))
}

fn counts(v: Option<&Value>, path: &str) -> Result<Counts, InputError> {
    let v = v.ok_or_else(|| {
        InputError::at(path, "missing: expected {\"successes\": N, \"total\": N}")
    })?;
    let obj = v.as_object().ok_or_else(|| {
        InputError::at(
            path,
            "expected {\"successes\": N, \"total\": N} for the proportions test",
        )
    })?;
    let c = Counts {
        successes: count(obj, path, "successes")?,
        total: count(obj, path, "total")?,
    };
    // Far beyond any canary's traffic, and where summing the exact test's terms one by
    // one would take minutes.
    if c.total > MAX_TRIALS {
        return Err(InputError::at(
            format!("{path}.total"),
            format!("{} trials: at most {MAX_TRIALS} are supported", c.total),
        ));
    }
    if c.successes > c.total {
        return Err(InputError::at(
            format!("{path}.successes"),
            format!("{} successes out of a total of {}", c.successes, c.total),
        ));
    }
    Ok(c)
}

fn text(obj: &Map<String, Value>, path: &str, key: &str) -> Result<String, InputError> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(_) => Err(InputError::at(
            format!("{path}.{key}"),
            "expected a non-empty string",
        )),
        None => Err(InputError::at(format!("{path}.{key}"), "missing")),
    }
}

/// Reads the input from parsed JSON.
pub fn from_value(v: &Value) -> Result<JudgeInput, InputError> {
    let top = object(v, "$")?;
    let groups = groups_from(top.get("groups"), "groups")?;
    let thresholds = thresholds_from(top.get("thresholds"), "thresholds")?;
    let list = top
        .get("metrics")
        .ok_or_else(|| InputError::at("metrics", "missing: expected a list of metrics"))?
        .as_array()
        .ok_or_else(|| InputError::at("metrics", "expected a list of metrics"))?;
    if list.is_empty() {
        return Err(InputError::at("metrics", "no metric to judge"));
    }
    let mut metrics = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let path = format!("metrics[{i}]");
        let obj = object(m, &path)?;
        let name = text(obj, &path, "name")?;
        if metrics.iter().any(|x: &MetricInput| x.name == name) {
            return Err(InputError::at(
                format!("{path}.name"),
                format!("`{name}` is named twice"),
            ));
        }
        let group = match obj.get("group") {
            None => "default".to_owned(),
            Some(_) => text(obj, &path, "group")?,
        };
        let settings = MetricSettings::from_object(obj, &path, false, &[])?;
        let data = match settings.test {
            Test::MannWhitney => MetricData::Samples {
                canary: samples(obj.get("canary"), &format!("{path}.canary"))?,
                baseline: samples(obj.get("baseline"), &format!("{path}.baseline"))?,
            },
            Test::Proportions => MetricData::Proportions {
                canary: counts(obj.get("canary"), &format!("{path}.canary"))?,
                baseline: counts(obj.get("baseline"), &format!("{path}.baseline"))?,
            },
        };
        metrics.push(MetricInput {
            name,
            group,
            settings,
            data,
        });
    }
    Ok(JudgeInput {
        groups,
        thresholds,
        metrics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_example_parses() {
        let input = parse(
            r#"{ "groups": {"istio": 60, "kubernetes": 40},
  "thresholds": {"pass": 95, "marginal": 75},
  "metrics": [
    {"name": "p95-latency", "group": "istio", "direction": "increase",
     "baseline": [5.1, 5.3, null, 5.0], "canary": [5.2, 5.6, 5.4, 5.1]},
    {"name": "healthy-responses", "group": "istio", "test": "proportions", "direction": "decrease",
     "baseline": {"successes": 9950, "total": 10000}, "canary": {"successes": 9890, "total": 10000}}
  ] }"#,
        )
        .unwrap();
        assert_eq!(input.metrics.len(), 2);
        match &input.metrics[0].data {
            MetricData::Samples { baseline, .. } => assert!(baseline[2].is_nan()),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            input.groups,
            vec![("istio".into(), 60.0), ("kubernetes".into(), 40.0)]
        );
    }

    #[test]
    fn problems_name_their_place() {
        let err = parse(
            "{\"metrics\": [\n {\"name\": \"a\", \"canary\": [1, \"x\"], \"baseline\": [1]}]}",
        )
        .unwrap_err();
        assert_eq!(err.place, "metrics[0].canary[1]");
        let err = parse("{\"metrics\": [\n {\"name\": \"a\",, }]}").unwrap_err();
        assert_eq!(err.place, "2:15");
        let err = parse(
            r#"{"metrics": [{"name": "a", "direction": "up", "canary": [], "baseline": []}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.place, "metrics[0].direction");
        let err = parse(r#"{"groups": {"a": 70, "b": 40}, "metrics": [{"name": "a", "canary": [], "baseline": []}]}"#).unwrap_err();
        assert_eq!(err.place, "groups");
        let err = parse(r#"{"metrics": [{"name": "a", "test": "proportions", "canary": {"successes": 5, "total": 4}, "baseline": {"successes": 1, "total": 1}}]}"#).unwrap_err();
        assert_eq!(err.place, "metrics[0].canary.successes");
    }
}
