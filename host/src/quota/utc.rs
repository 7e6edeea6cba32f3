//! UTC days and calendar months as budget windows, from Unix time.
//!
//! Small enough to own rather than pull in a date crate: the proleptic Gregorian
//! calendar, days counted from 1970-01-01, no leap seconds (as Unix time has none).

const SECS_PER_DAY: u64 = 86_400;

/// The UTC day `unix_secs` falls in, counted from 1970-01-01.
pub fn day(unix_secs: u64) -> u64 {
    unix_secs / SECS_PER_DAY
}

/// The UTC calendar month `unix_secs` falls in, as `year × 12 + (month − 1)`.
pub fn month(unix_secs: u64) -> u64 {
    let (year, month, _) = civil_date(day(unix_secs));
    year * 12 + u64::from(month - 1)
}

/// Seconds from `unix_secs` to the next UTC midnight (1 to 86 400).
pub fn secs_to_next_day(unix_secs: u64) -> u64 {
    SECS_PER_DAY - unix_secs % SECS_PER_DAY
}

/// Seconds from `unix_secs` to 00:00 UTC on the first day of the next month.
pub fn secs_to_next_month(unix_secs: u64) -> u64 {
    let (year, month, _) = civil_date(day(unix_secs));
    let (year, month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    (days_since_epoch(year, month, 1) * SECS_PER_DAY).saturating_sub(unix_secs)
}

/// Days in the 400-year Gregorian cycle, which starts on a March 1st here so that the
/// leap day falls at the end of each year.
const DAYS_PER_ERA: u64 = 146_097;
/// From 0000-03-01 (the start of era 0) to 1970-01-01.
const EPOCH_SHIFT: u64 = 719_468;

/// `(year, month 1–12, day 1–31)` of day `days` since 1970-01-01.
pub fn civil_date(days: u64) -> (u64, u32, u32) {
    let shifted = days + EPOCH_SHIFT;
    let era = shifted / DAYS_PER_ERA;
    let day_of_era = shifted % DAYS_PER_ERA;
    // Years within the era: every 4th a leap year, except every 100th, except the 400th
    // (the era's last day, 146 096, belongs to its last year).
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months from March: 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 31, 28/29, which the
    // line 153 × m + 2 over 5 steps through exactly.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day_of_month = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month as u32, day_of_month as u32)
}

/// Days from 1970-01-01 to `year-month-day` (years from 1970 on).
pub fn days_since_epoch(year: u64, month: u32, day: u32) -> u64 {
    let year = year - u64::from(month <= 2);
    let era = year / 400;
    let year_of_era = year % 400;
    let month_from_march = u64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + u64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era * DAYS_PER_ERA + day_of_era).saturating_sub(EPOCH_SHIFT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        for (days, date) in [
            (0, (1970, 1, 1)),
            (31, (1970, 2, 1)),
            (11_016, (2000, 2, 29)),
            (11_017, (2000, 3, 1)),
            (19_782, (2024, 2, 29)),
            (19_783, (2024, 3, 1)),
            (20_088, (2024, 12, 31)),
            (20_089, (2025, 1, 1)),
            (47_540, (2100, 2, 28)),
            (47_541, (2100, 3, 1)),
        ] {
            assert_eq!(civil_date(days), date, "day {days}");
            assert_eq!(days_since_epoch(date.0, date.1, date.2), days, "{date:?}");
        }
    }

    #[test]
    fn every_day_round_trips_and_follows_the_previous() {
        let mut previous = civil_date(0);
        for days in 1..200_000 {
            let date = civil_date(days);
            assert_eq!(days_since_epoch(date.0, date.1, date.2), days);
            let ((y0, m0, d0), (y, m, d)) = (previous, date);
            let same_month = (y, m, d) == (y0, m0, d0 + 1);
            let next_month =
                d == 1 && d0 >= 28 && ((y, m) == (y0, m0 + 1) || (y, m, m0) == (y0 + 1, 1, 12));
            assert!(same_month || next_month, "{previous:?} then {date:?}");
            previous = date;
        }
    }

    #[test]
    fn boundaries() {
        // 2024-02-29 23:59:59 UTC.
        let t = 19_782 * 86_400 + 86_399;
        assert_eq!(secs_to_next_day(t), 1);
        assert_eq!(secs_to_next_month(t), 1);
        assert_eq!(month(t) + 1, month(t + 1));
        assert_eq!(day(t) + 1, day(t + 1));
        // 2024-12-15 00:00:00 UTC: 17 days to 2025-01-01.
        let t = 20_072 * 86_400;
        assert_eq!(civil_date(day(t)), (2024, 12, 15));
        assert_eq!(secs_to_next_day(t), 86_400);
        assert_eq!(secs_to_next_month(t), 17 * 86_400);
    }
}
