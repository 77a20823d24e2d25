//! What kind of request a message is: the router picks the provider that
//! benchmarks best for its category (seed 003's `TaskCategoryDetector`).
//!
//! Keyword matching over lower-cased words, as the seed specifies; frustration or
//! distress in the message wins over everything (such a learner needs the most
//! empathetic provider, whatever the topic). Deterministic, allocation-light: it
//! runs on every gateway request.

/// The categories, in the seed's order.
pub const CATEGORIES: [&str; 6] = [
    "coding", "math", "research", "language", "empathy", "general",
];

const CODING: &[&str] = &[
    "code",
    "coding",
    "function",
    "algorithm",
    "debug",
    "bug",
    "python",
    "rust",
    "javascript",
    "java",
    "compile",
    "compiler",
    "program",
    "programming",
    "class",
    "variable",
    "loop",
    "array",
    "recursion",
    "sort",
    "sorting",
    "api",
    "sql",
    "regex",
    "stack",
    "exception",
    "refactor",
    "quicksort",
    "mergesort",
    "heapsort",
    "bubble",
    "binary",
    "hash",
    "tree",
    "graph",
    "pointer",
];
const MATH: &[&str] = &[
    "solve",
    "calculate",
    "equation",
    "derivative",
    "integral",
    "algebra",
    "geometry",
    "proof",
    "prove",
    "theorem",
    "matrix",
    "probability",
    "fraction",
    "percent",
    "sum",
    "multiply",
    "divide",
    "square",
    "root",
    "calculus",
    "statistics",
    "math",
    "maths",
];
const RESEARCH: &[&str] = &[
    "analyze",
    "analyse",
    "research",
    "compare",
    "study",
    "evidence",
    "sources",
    "history",
    "explain",
    "why",
    "cause",
    "effects",
    "review",
    "summarize",
    "summarise",
    "literature",
];
const LANGUAGE: &[&str] = &[
    "translate",
    "translation",
    "grammar",
    "correct",
    "sentence",
    "spelling",
    "vocabulary",
    "synonym",
    "french",
    "spanish",
    "german",
    "english",
    "pronounce",
    "verb",
    "tense",
    "word",
];
const DISTRESS: &[&str] = &[
    "frustrated",
    "frustrating",
    "frustration",
    "stressed",
    "anxious",
    "anxiety",
    "upset",
    "angry",
    "hate",
    "hopeless",
    "overwhelmed",
    "confused",
    "stuck",
    "sad",
    "depressed",
    "scared",
    "afraid",
    "crying",
    "struggling",
    "giving",
    "quit",
    "worthless",
    "stupid",
];

/// The category of `message`: `empathy` when it shows frustration or distress,
/// else the category with the most keyword hits (ties in [`CATEGORIES`] order),
/// else `general`.
pub fn detect(message: &str) -> &'static str {
    let mut hits = [0u32; 4];
    let mut distress = 0u32;
    // An equation written out ("2x + 5 = 15") is maths even without a keyword.
    let looks_like_equation = message.contains('=') && message.chars().any(|c| c.is_ascii_digit());
    if looks_like_equation {
        hits[1] += 2;
    }
    if message.contains("```") || message.contains("fn ") || message.contains("def ") {
        hits[0] += 2;
    }
    for word in message
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
    {
        let word = word.to_lowercase();
        let word = word.trim_matches('\'');
        if DISTRESS.contains(&word) {
            distress += 1;
        }
        for (i, list) in [CODING, MATH, RESEARCH, LANGUAGE].iter().enumerate() {
            if list.contains(&word) {
                hits[i] += 1;
            }
        }
    }
    let lower = message.to_lowercase();
    for phrase in [
        "give up",
        "can't do this",
        "cannot do this",
        "i'm so lost",
        "im so",
    ] {
        if lower.contains(phrase) {
            distress += 1;
        }
    }
    if distress > 0 {
        return "empathy";
    }
    let (best, count) =
        hits.iter().enumerate().fold(
            (0, 0),
            |(bi, bc), (i, &c)| if c > bc { (i, c) } else { (bi, bc) },
        );
    if count == 0 {
        return "general";
    }
    CATEGORIES[best]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_examples_land_where_the_seed_says() {
        assert_eq!(detect("Explain bubble sort"), "coding");
        assert_eq!(detect("Im so frustrated with this!"), "empathy");
        assert_eq!(detect("Solve 2x+5=15"), "math");
        assert_eq!(detect("Explain quicksort"), "coding");
        assert_eq!(detect("Now explain mergesort algorithm"), "coding");
    }

    #[test]
    fn each_category_has_a_clear_example() {
        assert_eq!(detect("Debug this Python function please"), "coding");
        assert_eq!(detect("Calculate the derivative of x^2"), "math");
        assert_eq!(
            detect("Compare the causes of the two world wars"),
            "research"
        );
        assert_eq!(detect("Translate this sentence into French"), "language");
        assert_eq!(detect("Hello there, how are you?"), "general");
        assert_eq!(detect(""), "general");
    }

    #[test]
    fn distress_wins_over_the_topic() {
        assert_eq!(
            detect("I'm stuck on this recursion code and I want to give up"),
            "empathy"
        );
        assert_eq!(detect("I GIVE UP on algebra"), "empathy");
    }

    #[test]
    fn detection_is_deterministic_and_never_panics_on_odd_text() {
        for text in ["=", "```", "\u{0}\u{ffff}", "ÄÖÜ ß", "1=1", "'''"] {
            assert_eq!(detect(text), detect(text));
            assert!(CATEGORIES.contains(&detect(text)));
        }
    }
}
