//! The answer generator: what a simulated learner types for a prompt.
//!
//! Prompts come back from the daemon as the bank item's prompt text, so the
//! generator finds the item by its prompt and answers from its rubric. Every
//! candidate answer is graded once, at start, with the daemon's own grader
//! ([`tutorlog_actors::content::grade`]): a right answer is kept only if it grades
//! at least [`RIGHT_SCORE_MIN`], a wrong one only if it grades below
//! [`WRONG_SCORE_MAX`]. So the traffic's right/wrong mix is the one asked for, and
//! a request costs an index lookup, not a grading.
//!
//! Whether a learner answers right is drawn from their [`Skill`]: an aptitude
//! around `--correct-share`, minus a little on hard items, plus practice.

use std::collections::HashMap;

use tutorlog_actors::content::{grade, normalize_text, parse_number, AnswerKind, Difficulty, Item};

/// A right answer grades at least this (the grader passes at 80; 90 keeps clear
/// of partial credit).
pub const RIGHT_SCORE_MIN: u8 = 90;
/// A wrong answer grades below this.
pub const WRONG_SCORE_MAX: u8 = 50;

/// Skill a learner gains over a long run of practice in one area, as a chance.
const PRACTICE_GAIN_MAX: f64 = 0.24;
/// Rounds of practice over which about two thirds of [`PRACTICE_GAIN_MAX`] is gained.
const PRACTICE_ROUNDS_SCALE: f64 = 6.0;
/// How far one learner's aptitude may sit from `--correct-share`.
const APTITUDE_SPREAD: f64 = 0.1;
/// Chance offsets by difficulty: easy items are answered right more often.
const EASY_OFFSET: f64 = 0.1;
const HARD_OFFSET: f64 = -0.1;

/// Shares of the kinds of wrong answer, in tenths (the rest, if a kind is missing
/// for an item, falls to the next kind that exists).
const WRONG_MISCONCEPTION_TENTHS: u64 = 5;
const WRONG_PARTIAL_TENTHS: u64 = 3;
const WRONG_VAGUE_TENTHS: u64 = 1;

/// SplitMix64 (Steele, Lea and Flood 2014): 8 bytes of state per learner (a run may
/// hold 100,000 of them) and the same sequence for a seed in every build, so a
/// `--seed` replays the same answers for the same prompts.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A generator for stream `index` of `seed` (one per learner).
    pub fn derived(seed: u64, index: u64) -> Rng {
        let mut mixer = Rng(seed ^ index.wrapping_mul(0xa076_1d64_78bd_642f));
        Rng(mixer.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..count` (`count` > 0; the modulo bias is below 2⁻³² for the
    /// small counts used here).
    pub fn below(&mut self, count: u64) -> u64 {
        assert!(count > 0, "Rng::below(0)");
        self.next_u64() % count
    }

    /// True with probability `chance`.
    pub fn chance(&mut self, chance: f64) -> bool {
        self.unit() < chance
    }
}

/// One answer, as typed and as a JSON string literal ready to splice into a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The text.
    pub text: Box<str>,
    /// `text` as a JSON string, quotes included.
    pub json: Box<str>,
}

impl Answer {
    fn new(text: &str) -> Answer {
        let json = serde_json::Value::from(text).to_string();
        Answer {
            text: text.into(),
            json: json.into_boxed_str(),
        }
    }
}

/// The kinds of wrong answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrongKind {
    /// A tagged misconception from the rubric (so mistake mining has something to find).
    Misconception,
    /// A partial answer: a wrong number near the right one, part of the reference.
    Partial,
    /// "I'm not sure".
    Vague,
    /// Nothing at all.
    Empty,
}

/// The answers kept for one item.
#[derive(Debug, Clone)]
pub struct ItemAnswers {
    /// The item's id.
    pub id: Box<str>,
    /// The item's difficulty.
    pub difficulty: Difficulty,
    /// Answers grading at least [`RIGHT_SCORE_MIN`] (never empty: the reference).
    pub right: Vec<Answer>,
    /// Answers grading below [`WRONG_SCORE_MAX`], by kind (`Empty` always present).
    pub wrong: Vec<(WrongKind, Answer)>,
}

/// Every item's answers, found by prompt.
#[derive(Debug, Clone)]
pub struct AnswerBook {
    items: Vec<ItemAnswers>,
    by_prompt: HashMap<Box<str>, u32>,
    by_normalized: HashMap<String, u32>,
    /// Said when nothing matches a prompt (a daemon with another bank).
    unknown: Answer,
}

impl AnswerBook {
    /// Builds the book from bank items, grading each candidate answer.
    pub fn new(items: &[Item]) -> AnswerBook {
        let mut book = AnswerBook {
            items: Vec::with_capacity(items.len()),
            by_prompt: HashMap::with_capacity(items.len()),
            by_normalized: HashMap::with_capacity(items.len()),
            unknown: Answer::new("I don't know"),
        };
        for item in items {
            let index = u32::try_from(book.items.len()).unwrap_or(u32::MAX);
            book.by_prompt.insert(item.prompt.as_str().into(), index);
            book.by_normalized
                .insert(normalize_text(&item.prompt), index);
            book.items.push(item_answers(item));
        }
        book
    }

    /// The bundled bank's book (the bank the daemon serves).
    pub fn bundled() -> AnswerBook {
        AnswerBook::new(tutorlog_actors::content::ItemBank::bundled().items())
    }

    /// What a learner says to a prompt that is not in the bank.
    pub fn unknown(&self) -> &Answer {
        &self.unknown
    }

    /// All items' answers, in bank order.
    pub fn items(&self) -> &[ItemAnswers] {
        &self.items
    }

    /// The item whose prompt this is (exact text first, then normalised).
    pub fn find(&self, prompt: &str) -> Option<&ItemAnswers> {
        let index = match self.by_prompt.get(prompt) {
            Some(index) => *index,
            None => *self.by_normalized.get(&normalize_text(prompt))?,
        };
        self.items.get(index as usize)
    }

    /// What a learner answers to `prompt` when `right` (for an unknown prompt,
    /// "I don't know", and `None` as the item).
    pub fn answer<'a>(
        &'a self,
        prompt: &str,
        right: bool,
        rng: &mut Rng,
    ) -> (Option<&'a ItemAnswers>, &'a Answer) {
        match self.find(prompt) {
            Some(item) => (Some(item), item.pick(right, rng)),
            None => (None, &self.unknown),
        }
    }
}

impl ItemAnswers {
    /// A right answer, or a wrong one of a kind drawn by the shares above.
    pub fn pick(&self, right: bool, rng: &mut Rng) -> &Answer {
        if right {
            let index = rng.below(self.right.len() as u64) as usize;
            return self
                .right
                .get(index)
                .unwrap_or_else(|| unreachable!("an item always keeps its reference"));
        }
        let draw = rng.below(10);
        let wanted = if draw < WRONG_MISCONCEPTION_TENTHS {
            WrongKind::Misconception
        } else if draw < WRONG_MISCONCEPTION_TENTHS + WRONG_PARTIAL_TENTHS {
            WrongKind::Partial
        } else if draw < WRONG_MISCONCEPTION_TENTHS + WRONG_PARTIAL_TENTHS + WRONG_VAGUE_TENTHS {
            WrongKind::Vague
        } else {
            WrongKind::Empty
        };
        let order = [
            WrongKind::Misconception,
            WrongKind::Partial,
            WrongKind::Vague,
            WrongKind::Empty,
        ];
        let start = order.iter().position(|k| *k == wanted).unwrap_or(0);
        for kind in order.iter().cycle().skip(start).take(order.len()) {
            let count = self.wrong.iter().filter(|(k, _)| k == kind).count() as u64;
            if count > 0 {
                let nth = rng.below(count) as usize;
                if let Some((_, answer)) = self.wrong.iter().filter(|(k, _)| k == kind).nth(nth) {
                    return answer;
                }
            }
        }
        unreachable!("an item always keeps the empty answer")
    }
}

/// Grades every candidate once and keeps those on the right side of the bounds.
fn item_answers(item: &Item) -> ItemAnswers {
    let mut right: Vec<Answer> = Vec::new();
    for text in right_candidates(item) {
        if grade(item, &text).score >= RIGHT_SCORE_MIN && !right.iter().any(|a| *a.text == *text) {
            right.push(Answer::new(&text));
        }
    }
    if right.is_empty() {
        // The bank's check guarantees the reference grades 100; an operator's bank
        // that breaks it still gets answered.
        right.push(Answer::new(&item.answer));
    }
    let mut wrong: Vec<(WrongKind, Answer)> = Vec::new();
    for (kind, text) in wrong_candidates(item) {
        let duplicate = wrong.iter().any(|(_, a)| *a.text == *text);
        if !duplicate && grade(item, &text).score < WRONG_SCORE_MAX {
            wrong.push((kind, Answer::new(&text)));
        }
    }
    ItemAnswers {
        id: item.id.as_str().into(),
        difficulty: item.difficulty,
        right,
        wrong,
    }
}

fn right_candidates(item: &Item) -> Vec<String> {
    let reference = item.answer.trim();
    let mut out = vec![reference.to_owned()];
    out.extend(item.accepted.iter().map(|a| a.trim().to_owned()));
    if item.kind != AnswerKind::Keywords {
        // How people actually type short answers.
        out.push(format!("the answer is {reference}"));
        out.push(reference.to_lowercase());
        out.push(format!("{reference}."));
    }
    out
}

fn wrong_candidates(item: &Item) -> Vec<(WrongKind, String)> {
    let mut out: Vec<(WrongKind, String)> = item
        .misconceptions
        .iter()
        .map(|m| (WrongKind::Misconception, m.answer.trim().to_owned()))
        .collect();
    out.extend(
        partial_candidates(item)
            .into_iter()
            .map(|t| (WrongKind::Partial, t)),
    );
    out.push((WrongKind::Vague, "I'm not sure".to_owned()));
    out.push((WrongKind::Vague, "no idea, sorry".to_owned()));
    out.push((WrongKind::Empty, String::new()));
    out
}

/// Near misses: an off-by-one or tenfold number, the first words of the reference.
fn partial_candidates(item: &Item) -> Vec<String> {
    let reference = item.answer.trim();
    let words: Vec<&str> = reference.split_whitespace().collect();
    match item.kind {
        AnswerKind::Numeric => match parse_number(reference) {
            Some(value) => [value + 1.0, value - 1.0, value * 10.0]
                .iter()
                .map(|v| format_number(*v))
                .collect(),
            None => Vec::new(),
        },
        AnswerKind::Exact if words.len() > 1 => {
            vec![words
                .iter()
                .take(words.len() / 2)
                .copied()
                .collect::<Vec<_>>()
                .join(" ")]
        }
        AnswerKind::Exact => Vec::new(),
        AnswerKind::Keywords => {
            let third = (words.len() / 3).max(1);
            vec![words
                .iter()
                .take(third)
                .copied()
                .collect::<Vec<_>>()
                .join(" ")]
        }
    }
}

fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// How likely a learner is to answer right: `--correct-share` for an average
/// learner on a medium item midway up the practice curve.
#[derive(Debug, Clone, Copy)]
pub struct Skill {
    correct_share: f64,
}

impl Skill {
    /// For `--correct-share` (clamped to 0..=1; 0 and 1 are exact: never / always).
    pub fn new(correct_share: f64) -> Skill {
        Skill {
            correct_share: correct_share.clamp(0.0, 1.0),
        }
    }

    /// A learner's aptitude offset, drawn once per learner.
    pub fn aptitude(&self, rng: &mut Rng) -> f32 {
        ((rng.unit() * 2.0 - 1.0) * APTITUDE_SPREAD) as f32
    }

    /// The chance of a right answer after `practice` rounds in the item's area.
    pub fn p_right(&self, aptitude: f32, practice: u16, difficulty: Difficulty) -> f64 {
        if self.correct_share <= 0.0 || self.correct_share >= 1.0 {
            return self.correct_share;
        }
        let gain = PRACTICE_GAIN_MAX * (1.0 - (-f64::from(practice) / PRACTICE_ROUNDS_SCALE).exp())
            - PRACTICE_GAIN_MAX / 2.0;
        let offset = match difficulty {
            Difficulty::Easy => EASY_OFFSET,
            Difficulty::Medium => 0.0,
            Difficulty::Hard => HARD_OFFSET,
        };
        (self.correct_share + f64::from(aptitude) + gain + offset).clamp(0.02, 0.98)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tutorlog_actors::content::ItemBank;

    #[test]
    fn every_right_answer_grades_at_least_90_and_every_wrong_one_below_50() {
        let bank = ItemBank::bundled();
        let book = AnswerBook::new(bank.items());
        assert_eq!(book.items().len(), bank.len());
        for (item, answers) in bank.items().iter().zip(book.items()) {
            assert!(!answers.right.is_empty(), "{}", item.id);
            assert!(
                answers.wrong.iter().any(|(k, _)| *k == WrongKind::Empty),
                "{}",
                item.id
            );
            for answer in &answers.right {
                let score = grade(item, &answer.text).score;
                assert!(score >= 90, "{}: {:?} grades {score}", item.id, answer.text);
            }
            for (_, answer) in &answers.wrong {
                let score = grade(item, &answer.text).score;
                assert!(score < 50, "{}: {:?} grades {score}", item.id, answer.text);
            }
        }
    }

    #[test]
    fn most_items_have_a_misconception_or_partial_wrong_answer() {
        let book = AnswerBook::bundled();
        let plausible = book
            .items()
            .iter()
            .filter(|a| {
                a.wrong
                    .iter()
                    .any(|(k, _)| matches!(k, WrongKind::Misconception | WrongKind::Partial))
            })
            .count();
        assert!(
            plausible * 10 >= book.items().len() * 9,
            "{plausible} of {}",
            book.items().len()
        );
    }

    #[test]
    fn picked_answers_grade_by_the_side_asked_for() {
        let bank = ItemBank::bundled();
        let book = AnswerBook::new(bank.items());
        let mut rng = Rng::new(11);
        for item in bank.items() {
            for right in [true, false] {
                for _ in 0..8 {
                    let (found, answer) = book.answer(&item.prompt, right, &mut rng);
                    assert_eq!(found.map(|f| &*f.id), Some(item.id.as_str()));
                    let score = grade(item, &answer.text).score;
                    assert_eq!(score >= 90, right, "{}: {:?} {score}", item.id, answer.text);
                    assert_eq!(score < 50, !right, "{}: {:?} {score}", item.id, answer.text);
                }
            }
        }
    }

    #[test]
    fn prompts_are_found_exactly_or_normalised_and_unknown_ones_are_not() {
        let book = AnswerBook::bundled();
        let first = book.items().first().map(|i| i.id.clone()).expect("an item");
        let prompt = &ItemBank::bundled().items().first().expect("item").prompt;
        assert_eq!(book.find(prompt).map(|i| i.id.clone()), Some(first.clone()));
        let shouted = format!("  {}  ", prompt.to_uppercase());
        assert_eq!(book.find(&shouted).map(|i| i.id.clone()), Some(first));
        let mut rng = Rng::new(1);
        let (item, answer) = book.answer("What is the airspeed of a swallow?", true, &mut rng);
        assert!(item.is_none());
        assert_eq!(&*answer.text, "I don't know");
    }

    #[test]
    fn answers_are_deterministic_for_a_seed() {
        let bank = ItemBank::bundled();
        let book = AnswerBook::new(bank.items());
        let skill = Skill::new(0.7);
        let run = |seed: u64| -> Vec<Box<str>> {
            let mut rng = Rng::derived(seed, 3);
            let aptitude = skill.aptitude(&mut rng);
            bank.items()
                .iter()
                .enumerate()
                .map(|(practice, item)| {
                    let p = skill.p_right(aptitude, practice as u16, item.difficulty);
                    let right = rng.chance(p);
                    book.answer(&item.prompt, right, &mut rng).1.text.clone()
                })
                .collect()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn json_literals_escape_the_text() {
        let answer = Answer::new("say \"hi\"\n");
        assert_eq!(&*answer.json, r#""say \"hi\"\n""#);
        let back: String = serde_json::from_str(&answer.json).expect("JSON");
        assert_eq!(back, *answer.text);
    }

    #[test]
    fn skill_rises_with_practice_and_averages_near_the_correct_share() {
        let skill = Skill::new(0.7);
        let mut last = 0.0;
        for practice in [0u16, 1, 3, 6, 12, 40] {
            let p = skill.p_right(0.0, practice, Difficulty::Medium);
            assert!(p > last, "{practice}: {p} after {last}");
            last = p;
        }
        assert!(skill.p_right(0.0, 0, Difficulty::Easy) > skill.p_right(0.0, 0, Difficulty::Hard));
        // A five-round session of an average learner on medium items averages ~F.
        let mean: f64 = (0..5)
            .map(|r| skill.p_right(0.0, r, Difficulty::Medium))
            .sum::<f64>()
            / 5.0;
        assert!((mean - 0.7).abs() < 0.1, "{mean}");
        assert_eq!(Skill::new(1.0).p_right(-0.1, 0, Difficulty::Hard), 1.0);
        assert_eq!(Skill::new(0.0).p_right(0.1, 50, Difficulty::Easy), 0.0);
    }

    #[test]
    fn the_rng_is_uniform_enough_and_stable() {
        let mut rng = Rng::new(0);
        // SplitMix64's published first output for seed 0.
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        let mut rng = Rng::new(5);
        let hits = (0..100_000).filter(|_| rng.chance(0.3)).count();
        assert!((29_000..31_000).contains(&hits), "{hits}");
        let mut counts = [0u32; 4];
        for _ in 0..40_000 {
            counts[rng.below(4) as usize] += 1;
        }
        assert!(
            counts.iter().all(|c| (9_500..10_500).contains(c)),
            "{counts:?}"
        );
    }
}
