//! `SubmitTime` / `AcceptTime` as MTurk writes them and as spreadsheets re-save them, read as a
//! span of seconds since the Unix epoch.
//!
//! Accepted forms (anything else does not parse):
//! - MTurk's own `Sun Mar 10 01:58:03 PDT 2024` (zones UTC, GMT, and the four US zones in standard
//!   and daylight time); the weekday must match the date, since MTurk never writes another;
//! - ISO 8601 `2024-03-10T01:58:03Z`, with `T` or a space, optional seconds and fraction, and `Z`,
//!   `+HH:MM`, `+HHMM`, `+HH` or no zone (Google Sheets and LibreOffice write
//!   `2024-03-10 01:58:03`);
//! - slash dates `3/10/2024 1:58`, `3/10/2024 1:58:03`, `3/10/2024 1:58:03 AM`, `3/10/2024` (Excel,
//!   LibreOffice and Google Sheets in their US and European locales); four-digit years only, since
//!   readers disagree on the century of `24`.
//!
//! A time without a zone is the wall clock MTurk printed, US Pacific (America/Los_Angeles): a
//! spreadsheet drops the `PST`/`PDT` label but keeps the clock. A time given to the minute (or the
//! day) covers that whole minute (or day), and a Pacific wall-clock time the autumn change reads
//! twice (or the spring change skips) covers both readings, so [`TimeSpan`] is an interval and
//! two times are ordered only when their intervals do not overlap.

use serde::Serialize;

/// Which number comes first in a slash date such as `10/03/2024`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DateOrder {
    /// `3/10/2024` is 10 March (US locales).
    MonthFirst,
    /// `10/03/2024` is 10 March (European locales).
    DayFirst,
}

impl DateOrder {
    /// `month/day/year` or `day/month/year`.
    pub fn name(self) -> &'static str {
        match self {
            DateOrder::MonthFirst => "month/day/year",
            DateOrder::DayFirst => "day/month/year",
        }
    }
}

/// An instant known only to lie in `[lo, hi)` seconds since 1970-01-01 00:00:00 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSpan {
    /// Earliest second it may be.
    pub lo: i64,
    /// One past the latest second it may be.
    pub hi: i64,
}

impl TimeSpan {
    /// Whether this instant is certainly earlier than `other`.
    pub fn before(&self, other: &TimeSpan) -> bool {
        self.hi <= other.lo
    }
}

/// How one file writes its slash dates, from all of its time values: a first number above 12
/// means day-first, a second number above 12 means month-first, both at once is `None` (the file
/// mixes orders and no slash date in it can be trusted). Without either sign, month-first: MTurk
/// and its requesters' spreadsheets are mostly US, and `3/10/2024` is what US Excel writes.
pub fn slash_date_order<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<DateOrder> {
    let (mut day_first, mut month_first) = (false, false);
    for v in values {
        if let Some((a, b, _)) = slash_date(v.split_whitespace().next().unwrap_or("")) {
            day_first |= a > 12;
            month_first |= b > 12;
        }
    }
    match (day_first, month_first) {
        (true, true) => None,
        (true, false) => Some(DateOrder::DayFirst),
        _ => Some(DateOrder::MonthFirst),
    }
}

/// Whether `s` holds a slash date at all (so that its file's [`slash_date_order`] matters).
pub fn is_slash_date(s: &str) -> bool {
    slash_date(s.split_whitespace().next().unwrap_or("")).is_some()
}

/// Parses a `SubmitTime` / `AcceptTime` value in any of the module's forms; `None` when it does
/// not parse or names an impossible date or time.
pub fn parse_time(s: &str, order: DateOrder) -> Option<TimeSpan> {
    let s = s.trim();
    if let Some(t) = parse_mturk(s) {
        return Some(t);
    }
    if s.as_bytes().get(4) == Some(&b'-') {
        return parse_iso(s);
    }
    parse_slash(s, order)
}

const HOUR: i64 = 3600;
const DAY: i64 = 86400;

fn parse_mturk(s: &str) -> Option<TimeSpan> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [weekday, month, day, hms, zone, year] = parts.as_slice() else {
        return None;
    };
    let months = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let month = months.iter().position(|m| m.eq_ignore_ascii_case(month))? as i64 + 1;
    let day = number(day, 1, 2)?;
    let year = number(year, 4, 4)?;
    let (h, m, sec, width) = clock(hms)?;
    if width != 1 {
        return None;
    }
    let offset_h = match zone.to_ascii_uppercase().as_str() {
        "UTC" | "GMT" => 0,
        "EDT" => -4,
        "EST" | "CDT" => -5,
        "CST" | "MDT" => -6,
        "MST" | "PDT" => -7,
        "PST" => -8,
        _ => return None,
    };
    let days = date(year, month, day)?;
    let weekdays = ["thu", "fri", "sat", "sun", "mon", "tue", "wed"];
    if !weekdays[days.rem_euclid(7) as usize].eq_ignore_ascii_case(weekday) {
        return None;
    }
    let t = days * DAY + h * HOUR + m * 60 + sec - offset_h * HOUR;
    Some(TimeSpan { lo: t, hi: t + 1 })
}

fn parse_iso(s: &str) -> Option<TimeSpan> {
    let (d, rest) = match s.find(['T', ' ']) {
        Some(i) => (&s[..i], s[i + 1..].trim_start()),
        None => (s, ""),
    };
    let dp: Vec<&str> = d.split('-').collect();
    let [y, mo, da] = dp.as_slice() else {
        return None;
    };
    let days = date(number(y, 4, 4)?, number(mo, 1, 2)?, number(da, 1, 2)?)?;
    if rest.is_empty() {
        return pacific(days * DAY, DAY);
    }
    // The zone starts at `Z`, `+` or `-` after the clock (or a space before `UTC`).
    let (clock_text, zone) = match rest.find(['Z', 'z', '+', '-', ' ']) {
        Some(i) => (&rest[..i], rest[i..].trim()),
        None => (rest, ""),
    };
    let (h, m, sec, width) = clock(clock_text)?;
    let wall = days * DAY + h * HOUR + m * 60 + sec;
    if zone.is_empty() {
        return pacific(wall, width);
    }
    let offset = zone_offset(zone)?;
    Some(TimeSpan {
        lo: wall - offset,
        hi: wall - offset + width,
    })
}

/// `Z`, `UTC`, `+HH:MM`, `+HHMM`, `+HH` (or `-`), in seconds east of UTC.
fn zone_offset(z: &str) -> Option<i64> {
    if z.eq_ignore_ascii_case("z") || z.eq_ignore_ascii_case("utc") {
        return Some(0);
    }
    let sign = match z.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let body = &z[1..];
    let (h, m) = match (body.len(), body.as_bytes().get(2)) {
        (2, _) => (number(body, 2, 2)?, 0),
        (4, _) => (number(body.get(..2)?, 2, 2)?, number(body.get(2..)?, 2, 2)?),
        (5, Some(b':')) => (number(body.get(..2)?, 2, 2)?, number(body.get(3..)?, 2, 2)?),
        _ => return None,
    };
    if h > 14 || m > 59 {
        return None;
    }
    Some(sign * (h * HOUR + m * 60))
}

fn parse_slash(s: &str, order: DateOrder) -> Option<TimeSpan> {
    let mut parts = s.split_whitespace();
    let (a, b, y) = slash_date(parts.next()?)?;
    let (month, day) = match order {
        DateOrder::MonthFirst => (a, b),
        DateOrder::DayFirst => (b, a),
    };
    let days = date(y, month, day)?;
    let Some(clock_text) = parts.next() else {
        return pacific(days * DAY, DAY);
    };
    let (mut h, m, sec, width) = clock(clock_text)?;
    match parts.next().map(|p| p.to_ascii_uppercase()) {
        None => {}
        Some(p) if p == "AM" || p == "PM" => {
            if !(1..=12).contains(&h) {
                return None;
            }
            h = h % 12 + if p == "PM" { 12 } else { 0 };
        }
        Some(_) => return None,
    }
    if parts.next().is_some() {
        return None;
    }
    pacific(days * DAY + h * HOUR + m * 60 + sec, width)
}

/// `a/b/yyyy` as its three numbers.
fn slash_date(s: &str) -> Option<(i64, i64, i64)> {
    let p: Vec<&str> = s.split('/').collect();
    let [a, b, y] = p.as_slice() else {
        return None;
    };
    Some((number(a, 1, 2)?, number(b, 1, 2)?, number(y, 4, 4)?))
}

/// `H:MM`, `H:MM:SS` or `H:MM:SS.fff` as hours, minutes, whole seconds and the width of the
/// span it names (60 without seconds, else 1).
fn clock(s: &str) -> Option<(i64, i64, i64, i64)> {
    let p: Vec<&str> = s.split(':').collect();
    let (h, m, sec, width) = match p.as_slice() {
        [h, m] => (number(h, 1, 2)?, number(m, 2, 2)?, 0, 60),
        [h, m, sec] => {
            let (whole, frac) = sec.split_once('.').unwrap_or((sec, "0"));
            if frac.is_empty() || !frac.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            (number(h, 1, 2)?, number(m, 2, 2)?, number(whole, 2, 2)?, 1)
        }
        _ => return None,
    };
    (h < 24 && m < 60 && sec < 60).then_some((h, m, sec, width))
}

/// A run of `min..=max` ASCII digits.
fn number(s: &str, min: usize, max: usize) -> Option<i64> {
    if s.len() < min || s.len() > max || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Days since 1970-01-01 of a valid proleptic Gregorian date.
fn date(y: i64, m: i64, d: i64) -> Option<i64> {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let len = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let ok = (1..=12).contains(&m) && d >= 1 && d <= len[(m - 1) as usize];
    ok.then(|| days_from_civil(y, m, d))
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

/// The span of UTC instants the Pacific wall-clock span `[wall, wall + width)` (seconds as if the
/// wall clock were UTC) may mean. `None` before 1987, whose daylight-time rules are not built in.
fn pacific(wall: i64, width: i64) -> Option<TimeSpan> {
    let first = wall.div_euclid(DAY);
    if first < days_from_civil(1987, 1, 1) {
        return None;
    }
    let (lo, _) = pacific_readings(wall);
    let (_, last) = pacific_readings(wall + width - 1);
    Some(TimeSpan { lo, hi: last + 1 })
}

/// The earliest and latest UTC readings of one Pacific wall-clock second: equal, except in the
/// autumn change's repeated hour and the spring change's skipped one, where they are an hour apart.
fn pacific_readings(wall: i64) -> (i64, i64) {
    let pdt = wall + 7 * HOUR;
    let pst = wall + 8 * HOUR;
    match (is_pacific_daylight(pdt), !is_pacific_daylight(pst)) {
        (true, false) => (pdt, pdt),
        (false, true) => (pst, pst),
        _ => (pdt, pst),
    }
}

/// Whether US Pacific clocks show daylight time at this UTC instant (rules from 1987: first
/// Sunday of April to last Sunday of October; from 2007: second Sunday of March to first Sunday
/// of November; the change is at 02:00 local time, 10:00 UTC in spring and 09:00 UTC in autumn).
fn is_pacific_daylight(t: i64) -> bool {
    let year = civil_year(t.div_euclid(DAY));
    let (start, end) = if year >= 2007 {
        (nth_sunday(year, 3, 2), nth_sunday(year, 11, 1))
    } else {
        (nth_sunday(year, 4, 1), last_sunday(year, 10))
    };
    (start * DAY + 10 * HOUR..end * DAY + 9 * HOUR).contains(&t)
}

/// Day number of the `n`th Sunday of a month.
fn nth_sunday(y: i64, m: i64, n: i64) -> i64 {
    let first = days_from_civil(y, m, 1);
    // 1970-01-01 was a Thursday: day 3 mod 7 is a Sunday.
    first + (3 - first).rem_euclid(7) + 7 * (n - 1)
}

/// Day number of the last Sunday of a month with 31 days.
fn last_sunday(y: i64, m: i64) -> i64 {
    let last = days_from_civil(y, m, 31);
    last - (last - 3).rem_euclid(7)
}

/// The year of a day number.
fn civil_year(days: i64) -> i64 {
    // Within a day of a year's boundary there is no clock change, so an estimate is enough.
    let y = 1970 + days.div_euclid(365);
    let mut y = y + 1;
    while days_from_civil(y, 1, 1) > days {
        y -= 1;
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_order_and_reject_garbage() {
        let m = DateOrder::MonthFirst;
        let a = parse_time("Wed Mar 06 10:15:01 PST 2024", m).expect("pst");
        let b = parse_time("Wed Mar 06 13:15:00 EST 2024", m).expect("est");
        assert!(b.before(&a));
        assert_eq!(
            parse_time("1970-01-02T00:00:00Z", m),
            Some(TimeSpan {
                lo: 86400,
                hi: 86401
            })
        );
        for bad in [
            "garbage",
            "",
            "########",
            "Thu Mar 06 10:15:01 PST 2024",
            "2/30/2024 1:00",
            "3/10/24 1:58",
            "13:00 3/10/2024",
            "3/10/2024 13:00 PM",
            "2024-03-10T25:00:00Z",
        ] {
            assert_eq!(parse_time(bad, m), None, "{bad}");
        }
    }

    #[test]
    fn zone_abbreviations() {
        let utc = parse_time("Sun Mar 10 12:00:00 UTC 2024", DateOrder::MonthFirst)
            .expect("utc")
            .lo;
        for (z, h) in [
            ("EST", 5),
            ("EDT", 4),
            ("CST", 6),
            ("CDT", 5),
            ("MST", 7),
            ("MDT", 6),
            ("PST", 8),
            ("PDT", 7),
        ] {
            let t = parse_time(
                &format!("Sun Mar 10 12:00:00 {z} 2024"),
                DateOrder::MonthFirst,
            )
            .expect(z);
            assert_eq!(t.lo - utc, h * HOUR, "{z}");
        }
    }

    #[test]
    fn slash_order_from_the_values() {
        assert_eq!(
            slash_date_order(["3/10/2024 1:58", "3/11/2024 1:58"]),
            Some(DateOrder::MonthFirst)
        );
        assert_eq!(
            slash_date_order(["10/03/2024 1:58", "13/03/2024 1:58"]),
            Some(DateOrder::DayFirst)
        );
        assert_eq!(slash_date_order(["13/03/2024", "03/13/2024"]), None);
        assert_eq!(slash_date_order(["x", ""]), Some(DateOrder::MonthFirst));
    }
}
