//! Durations as Istio and Go write them: `15s`, `250ms`, `1m30s`, `1.5s`.

use std::time::Duration;

/// Parses a duration such as `15s`, `250ms`, `2m`, `1h`, `1m30s` or `1.5s`.
/// A bare `0` means zero. Units: `us`, `ms`, `s`, `m`, `h`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err("empty duration: write for example `15s` or `250ms`".into());
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{text}` has no unit: write for example `{text}s`"))?;
        if digits == 0 {
            return Err(format!(
                "`{text}` is not a duration: write for example `15s` or `250ms`"
            ));
        }
        let number: f64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{text}` is not a duration: bad number"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            unit => {
                return Err(format!(
                    "`{text}` has an unknown unit `{unit}`: use us, ms, s, m or h"
                ));
            }
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    if !total.is_finite() || total > 365.0 * 24.0 * 3600.0 {
        return Err(format!("`{text}` is too long"));
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("500us"), Ok(Duration::from_micros(500)));
    }

    #[test]
    fn refuses_nonsense_with_a_hint() {
        assert!(parse("15").unwrap_err().contains("no unit"));
        assert!(parse("15x").unwrap_err().contains("unknown unit"));
        assert!(parse("s").unwrap_err().contains("not a duration"));
        assert!(parse("").is_err());
    }
}
