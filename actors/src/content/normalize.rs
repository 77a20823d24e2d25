//! Answer normalisation shared by the grader and the loader's rubric check.

/// Lead-ins a learner may put before a short answer; stripped before comparing.
const LEAD_INS: [&str; 5] = ["the answer is", "answer is", "answer", "it is", "it's"];

/// Characters stripped from both ends of a short answer (never a leading `.` or `-`,
/// which belong to numbers such as `.5` and `-3`).
fn is_trailing_junk(c: char) -> bool {
    matches!(c, '.' | ',' | ';' | ':' | '!' | '?' | '"' | '\'' | '`')
}

fn is_leading_junk(c: char) -> bool {
    matches!(c, '"' | '\'' | '`' | ',' | ';' | ':')
}

/// Maps look-alike Unicode characters to ASCII so that typed and pasted answers
/// compare equal.
fn fold_char(c: char) -> char {
    match c {
        '\u{2212}' | '\u{2013}' | '\u{2014}' => '-',
        '\u{2018}' | '\u{2019}' => '\'',
        '\u{201C}' | '\u{201D}' => '"',
        '\u{00A0}' | '\t' | '\n' | '\r' => ' ',
        _ => c,
    }
}

/// Normalises a short answer for comparison: lower case, look-alike characters folded,
/// whitespace collapsed, surrounding quotes and trailing punctuation removed, a lead-in
/// ("the answer is", "it is") and a leading article ("the", "a", "an") dropped.
///
/// ```
/// use tutorlog_actors::content::normalize_text;
/// assert_eq!(normalize_text("  The Answer is:  \"Paris\". "), "paris");
/// assert_eq!(normalize_text("x  =  4"), "x = 4");
/// ```
pub fn normalize_text(s: &str) -> String {
    let folded: String = s.chars().map(fold_char).collect::<String>().to_lowercase();
    let mut out = folded.split_whitespace().collect::<Vec<_>>().join(" ");
    // Repeat: stripping one layer can expose another ("answer: 'the Nile'.").
    loop {
        let before = out.clone();
        let trimmed = out
            .trim_end_matches(is_trailing_junk)
            .trim_start_matches(is_leading_junk)
            .trim()
            .to_string();
        out = trimmed;
        for lead in LEAD_INS {
            // Only a whole lead-in followed by ':' or a space, and never the whole answer.
            if let Some(rest) = out.strip_prefix(lead) {
                let lead_ends = rest.starts_with(':') || rest.starts_with(' ');
                let rest = rest.trim_start_matches(':').trim();
                if lead_ends && !rest.is_empty() {
                    out = rest.to_string();
                }
            }
        }
        for article in ["the ", "a ", "an "] {
            if let Some(rest) = out.strip_prefix(article) {
                if !rest.trim().is_empty() {
                    out = rest.trim().to_string();
                }
            }
        }
        if out == before {
            return out;
        }
    }
}

/// The normalised text without whitespace next to symbols (`x=4` equals `x = 4`,
/// `[1,2]` equals `[1, 2]`), keeping one space between two words or numbers so that
/// `3 0` stays different from `30`.
pub(crate) fn compact(normalized: &str) -> String {
    let chars: Vec<char> = normalized.chars().collect();
    let mut out = String::with_capacity(normalized.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let prev = out.chars().last();
            let next = chars.get(j).copied();
            if let (Some(p), Some(n)) = (prev, next) {
                if p.is_alphanumeric() && n.is_alphanumeric() {
                    out.push(' ');
                }
            }
            i = j;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Normalises free text for keyword search: lower case, every run of characters other
/// than letters and digits becomes one space, padded with a space at both ends so a
/// keyword can be matched at a word start by searching for `" " + keyword`.
pub(crate) fn keyword_haystack(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(' ');
    let mut last_space = true;
    for c in s.chars().map(fold_char).flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
            last_space = false;
        } else if !last_space {
            out.push(' ');
            last_space = true;
        }
    }
    if !last_space {
        out.push(' ');
    }
    out
}

/// Number of words in an answer.
pub(crate) fn word_count(s: &str) -> usize {
    s.split_whitespace().count()
}

/// Parses a plain decimal number: optional sign, digits, optional point and exponent,
/// thousands separators (`1,000`) allowed in groups of three.
fn parse_plain(s: &str) -> Option<f64> {
    if s.is_empty() {
        return None;
    }
    let s = if s.contains(',') {
        // Only thousands separators: every group after the first has three digits,
        // before any decimal point.
        let int_part = s.split(['.', 'e', 'E']).next().unwrap_or("");
        let groups: Vec<&str> = int_part.split(',').collect();
        let first = groups.first().copied().unwrap_or("");
        let first_digits = first.trim_start_matches(['-', '+']);
        if first_digits.is_empty()
            || first_digits.len() > 3
            || groups[1..]
                .iter()
                .any(|g| g.len() != 3 || !g.chars().all(|c| c.is_ascii_digit()))
        {
            return None;
        }
        s.replace(',', "")
    } else {
        s.to_string()
    };
    if !s.chars().any(|c| c.is_ascii_digit())
        || !s
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Parses a numeric answer in any common notation: `4`, `-3`, `+2`, `0.5`, `.5`,
/// `1/2`, `-3/4`, `50%`, `1,000`, `2.5e3`, with an optional left-hand side
/// (`x = 4`, `p(a) = 1/2`) and lead-in ("the answer is 4"). Returns `None` for
/// anything else, including several numbers and trailing words (the grader strips
/// an item's allowed units first).
///
/// ```
/// use tutorlog_actors::content::parse_number;
/// assert_eq!(parse_number("1/2"), Some(0.5));
/// assert_eq!(parse_number(".5"), Some(0.5));
/// assert_eq!(parse_number("50%"), Some(0.5));
/// assert_eq!(parse_number("x = -4"), Some(-4.0));
/// assert_eq!(parse_number("4 or 5"), None);
/// ```
pub fn parse_number(s: &str) -> Option<f64> {
    let n = normalize_text(s);
    // At most one '=', with a name rather than a number or a list on its left.
    let rhs = match n.split_once('=') {
        Some((lhs, rhs)) => {
            let lhs = lhs.trim();
            if rhs.contains('=')
                || lhs.is_empty()
                || lhs.contains([',', ';'])
                || parse_plain(&compact(lhs)).is_some()
            {
                return None;
            }
            rhs.trim()
        }
        None => n.as_str(),
    };
    let rhs = normalize_text(rhs);
    // A mixed number: "1 1/2" is 1.5 (not 11/2).
    let tokens: Vec<&str> = rhs.split_whitespace().collect();
    if let [whole, frac] = tokens.as_slice() {
        if let (Some((a, b)), true) = (
            frac.split_once('/'),
            whole.chars().all(|c| c.is_ascii_digit() || c == '-'),
        ) {
            let w = parse_plain(whole)?;
            let (num, den) = (parse_plain(a)?, parse_plain(b)?);
            if den == 0.0 || num < 0.0 || w.fract() != 0.0 {
                return None;
            }
            let magnitude = w.abs() + num / den;
            return Some(if whole.starts_with('-') {
                -magnitude
            } else {
                magnitude
            });
        }
    }
    let c = compact(&rhs);
    if let Some(p) = c.strip_suffix('%') {
        return parse_plain(p).map(|v| v / 100.0);
    }
    if let Some((a, b)) = c.split_once('/') {
        let num = parse_plain(a)?;
        let den = parse_plain(b)?;
        if den == 0.0 {
            return None;
        }
        return Some(num / den);
    }
    parse_plain(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_normalisation() {
        assert_eq!(normalize_text("  Paris. "), "paris");
        assert_eq!(normalize_text("The Pacific Ocean"), "pacific ocean");
        assert_eq!(normalize_text("`len(xs)`"), "len(xs)");
        assert_eq!(normalize_text("It is 'Canberra'!"), "canberra");
        assert_eq!(normalize_text("a"), "a");
        assert_eq!(normalize_text("Answer: 42"), "42");
        assert_eq!(normalize_text("answer"), "answer");
        assert_eq!(normalize_text("it's"), "it's");
        assert_eq!(normalize_text("answers"), "answers");
        assert_eq!(normalize_text(".5"), ".5");
        assert_eq!(normalize_text("   "), "");
        assert_eq!(normalize_text("?!."), "");
    }

    #[test]
    fn numbers() {
        for (s, v) in [
            ("4", 4.0),
            ("x = 4", 4.0),
            ("x=4", 4.0),
            ("-3", -3.0),
            ("\u{2212}3", -3.0),
            ("0.5", 0.5),
            (".5", 0.5),
            ("1/2", 0.5),
            ("1 / 2", 0.5),
            ("50%", 0.5),
            ("1,000", 1000.0),
            ("2.5e3", 2500.0),
            ("the answer is 12.", 12.0),
            ("P(A) = 3/4", 0.75),
            ("1 1/2", 1.5),
            ("-2 1/4", -2.25),
        ] {
            assert_eq!(parse_number(s), Some(v), "{s}");
        }
        for s in [
            "",
            "four",
            "4 or 5",
            "1/0",
            "1,5",
            "nan",
            "inf",
            "1,0000",
            "--",
            "x = 7, x = 4",
            "7 = 4",
            "= 4",
            "x = y = 4",
        ] {
            assert_eq!(parse_number(s), None, "{s}");
        }
    }

    #[test]
    fn compact_keeps_word_boundaries() {
        assert_eq!(compact("x = 4"), "x=4");
        assert_eq!(compact("[1, 2]"), "[1,2]");
        assert_eq!(compact("3 0"), "3 0");
        assert_eq!(compact("select * from users"), "select*from users");
    }

    #[test]
    fn keyword_haystack_pads_and_splits() {
        assert_eq!(
            keyword_haystack("Water-vapour, condenses!"),
            " water vapour condenses "
        );
        assert_eq!(keyword_haystack(""), " ");
    }
}
