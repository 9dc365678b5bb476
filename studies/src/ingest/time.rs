//! MTurk's `SubmitTime` / `AcceptTime` formats, as seconds since the Unix epoch.

/// Parses MTurk's `SubmitTime` (`Wed Mar 06 10:15:01 PST 2024`) to seconds since 1970 UTC.
/// Also accepts ISO 8601 `2024-03-06T10:15:01Z`. `None` when it cannot be read.
pub fn parse_mturk_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(v) = parse_iso(s) {
        return Some(v);
    }
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 {
        return None;
    }
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| *m == parts[1])? as i64 + 1;
    let day: i64 = parts[2].parse().ok()?;
    let hms: Vec<i64> = parts[3]
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<Vec<_>>>()?;
    if hms.len() != 3 {
        return None;
    }
    let offset_h = match parts[4] {
        "UTC" | "GMT" => 0,
        "PST" => -8,
        "PDT" => -7,
        "EST" => -5,
        "EDT" => -4,
        "CST" => -6,
        "CDT" => -5,
        "MST" => -7,
        "MDT" => -6,
        _ => return None,
    };
    let year: i64 = parts[5].parse().ok()?;
    Some(
        days_from_civil(year, month, day) * 86400 + hms[0] * 3600 + hms[1] * 60 + hms[2]
            - offset_h * 3600,
    )
}

fn parse_iso(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (d, t) = s.split_once('T')?;
    let dp: Vec<i64> = d
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<Vec<_>>>()?;
    let tp: Vec<i64> = t
        .split(':')
        .map(|x| x.split('.').next().and_then(|y| y.parse().ok()))
        .collect::<Option<Vec<_>>>()?;
    if dp.len() != 3 || tp.len() != 3 {
        return None;
    }
    Some(days_from_civil(dp[0], dp[1], dp[2]) * 86400 + tp[0] * 3600 + tp[1] * 60 + tp[2])
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mturk_times_order_across_zones() {
        let a = parse_mturk_time("Wed Mar 06 10:15:01 PST 2024");
        let b = parse_mturk_time("Wed Mar 06 13:15:00 EST 2024");
        assert!(a.is_some() && b.is_some());
        assert!(b < a);
        assert_eq!(parse_mturk_time("1970-01-02T00:00:00Z"), Some(86400));
        assert_eq!(parse_mturk_time("garbage"), None);
    }
}
