//! Class names: reading them, checking them, finding a class by name, and turning logits into
//! a ranked list.
//!
//! A label is the text of one class, `synset_words.txt` style: its first name, then any
//! synonyms, comma-separated (`"maillot, tank suit"`: first name `maillot`, synonym `tank suit`).

use serde::Serialize;

use crate::text;

/// The longest class name accepted, in characters: ImageNet's longest (a dragonfly's nine
/// synonyms) is 121; a 10,000-character name would only widen the page and slow the load.
pub const MAX_LABEL_CHARS: usize = 200;

/// The largest labels file the CLI reads (checked before reading): ImageNet's 1000 classes
/// are 31 kB; 4 MB holds 20,000 classes at the longest name.
pub const MAX_FILE_BYTES: u64 = 4_000_000;

/// A class name that cannot be shown or saved. `index` is the class's position (0-based, the
/// class index).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("label {index} is blank: every class needs a name")]
    Blank { index: usize },
    #[error(
        "label {index} (`{shown}`) holds a control character (at character {at}): class names must be plain text"
    )]
    Control {
        index: usize,
        at: usize,
        shown: String,
    },
    #[error("label {index} is {} characters long; the limit is {MAX_LABEL_CHARS}", text::thousands(*chars as u64))]
    TooLong { index: usize, chars: usize },
}

/// One class name as it may be saved, loaded and shown: not blank, no control characters
/// ([`text::is_control`]: line breaks, escape codes, bidirectional overrides), at most
/// [`MAX_LABEL_CHARS`] characters.
pub fn check_label(index: usize, label: &str) -> Result<(), LabelError> {
    // Length first: it is the cheap bound, and a huge label is not worth scanning further.
    let chars = label.chars().count();
    if chars > MAX_LABEL_CHARS {
        return Err(LabelError::TooLong { index, chars });
    }
    if label.trim().is_empty() {
        return Err(LabelError::Blank { index });
    }
    if let Some(at) = label.chars().position(text::is_control) {
        return Err(LabelError::Control {
            index,
            at,
            shown: text::escape(label),
        });
    }
    Ok(())
}

/// [`check_label`] for every label, naming the first bad one.
pub fn check_labels<S: AsRef<str>>(labels: &[S]) -> Result<(), LabelError> {
    labels
        .iter()
        .enumerate()
        .try_for_each(|(i, l)| check_label(i, l.as_ref()))
}

/// A class's first name (before the first comma).
pub fn first_name(label: &str) -> &str {
    label.split(',').next().unwrap_or("").trim()
}

/// A class's synonyms (the names after the first).
fn synonyms(label: &str) -> impl Iterator<Item = &str> {
    label.split(',').skip(1).map(str::trim)
}

/// Why a class given by index or name was not found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClassError {
    #[error("class {index} does not exist: {}", classes_are(*num_classes))]
    OutOfRange { index: usize, num_classes: usize },
    #[error("`{}`: no class names are known; give a class index ({})", text::escape(query), index_range(*num_classes))]
    NoNames { query: String, num_classes: usize },
    #[error("{}", not_found_message(query, suggestions, *num_classes))]
    NotFound {
        query: String,
        suggestions: Vec<(usize, String)>,
        num_classes: usize,
    },
    #[error("`{}` names {}: {}; give the index of the one you mean", text::escape(query), text::count(matches.len(), "class", "classes"), list(matches))]
    Ambiguous {
        query: String,
        matches: Vec<(usize, String)>,
    },
}

fn index_range(n: usize) -> String {
    if n == 1 {
        "0".into()
    } else {
        format!("0…{}", n.saturating_sub(1))
    }
}

fn classes_are(n: usize) -> String {
    match n {
        0 => "this model has no classes".into(),
        1 => "this model has 1 class, 0".into(),
        n => format!("this model has {n} classes, 0…{}", n - 1),
    }
}

fn list(classes: &[(usize, String)]) -> String {
    classes
        .iter()
        .map(|(i, l)| format!("#{i} {}", text::escape(l)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn not_found_message(query: &str, suggestions: &[(usize, String)], n: usize) -> String {
    let q = text::escape(query);
    if suggestions.is_empty() {
        format!(
            "no class is named `{q}`; give an index ({}) or a name from the labels",
            index_range(n)
        )
    } else {
        format!(
            "no class is named exactly `{q}`; did you mean {}?",
            list(suggestions)
        )
    }
}

/// A class given by its index or by name. A name is looked up in four rounds, each taken only
/// when the one before found nothing: a class's first name exactly, then in any case, then a
/// synonym exactly, then in any case. So `cardigan` is #474 (the sweater), while `Cardigan`
/// is #264 (the corgi, `Cardigan, Cardigan Welsh corgi`), and `missile` is #657, the class
/// of that first name, not #744 `projectile, missile`. A round that finds several classes is
/// an error listing them (`crane`: #134 the bird and #517 the machine), never a silent pick.
pub fn find_class(query: &str, names: &[String], num_classes: usize) -> Result<usize, ClassError> {
    let q = query.trim();
    if let Ok(index) = q.parse::<usize>() {
        if index >= num_classes {
            return Err(ClassError::OutOfRange { index, num_classes });
        }
        return Ok(index);
    }
    if names.is_empty() {
        return Err(ClassError::NoNames {
            query: query.into(),
            num_classes,
        });
    }
    let lower = q.to_lowercase();
    let rounds: [&dyn Fn(&str) -> bool; 4] = [
        &|l| first_name(l) == q,
        &|l| first_name(l).to_lowercase() == lower,
        &|l| synonyms(l).any(|s| s == q),
        &|l| synonyms(l).any(|s| s.to_lowercase() == lower),
    ];
    for matches in rounds {
        let found: Vec<(usize, String)> = names
            .iter()
            .enumerate()
            .filter(|(_, l)| matches(l))
            .map(|(i, l)| (i, l.clone()))
            .collect();
        match found.len() {
            0 => continue,
            1 => return Ok(found[0].0),
            _ => {
                return Err(ClassError::Ambiguous {
                    query: query.into(),
                    matches: found,
                });
            }
        }
    }
    let suggestions = names
        .iter()
        .enumerate()
        .filter(|(_, l)| !lower.is_empty() && l.to_lowercase().contains(&lower))
        .take(5)
        .map(|(i, l)| (i, l.clone()))
        .collect();
    Err(ClassError::NotFound {
        query: query.into(),
        suggestions,
        num_classes,
    })
}

/// Parse `synset_words.txt` (`n01440764 tench, Tinca tinca` per line) or a plain list of
/// names, one per line. The wnid, when present, is dropped.
pub fn parse_labels(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once(' ') {
            Some((wnid, rest))
                if wnid.len() == 9
                    && wnid.starts_with('n')
                    && wnid[1..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                rest.to_string()
            }
            _ => l.to_string(),
        })
        .collect()
}

/// Why a model's class names could not be had (see [`class_names`]).
#[cfg(not(target_family = "wasm"))]
#[derive(Debug, thiserror::Error)]
pub enum NamesError {
    #[error(transparent)]
    File(#[from] crate::files::FileError),
    #[error("labels {path}")]
    Invalid { path: String, source: LabelError },
    #[error("{} for a {num_classes}-class classifier", text::count(*labels, "label", "labels"))]
    Count { labels: usize, num_classes: usize },
}

/// A labels file (`synset_words.txt` style), every label checked.
#[cfg(not(target_family = "wasm"))]
pub fn read_labels(path: &std::path::Path) -> Result<Vec<String>, NamesError> {
    let names = parse_labels(&crate::files::read_text(path, crate::files::LABELS)?);
    check_labels(&names).map_err(|source| NamesError::Invalid {
        path: text::path(path),
        source,
    })?;
    Ok(names)
}

/// A model's class names: those in `file`, else those `stored` in its weights file, else the
/// shared ImageNet list (for a 1000-class model); empty when there are none. Names given must
/// be one per class.
#[cfg(not(target_family = "wasm"))]
pub fn class_names(
    file: Option<&std::path::Path>,
    stored: Option<&[String]>,
    num_classes: usize,
) -> Result<Vec<String>, NamesError> {
    let names = match (file, stored) {
        (Some(p), _) => read_labels(p)?,
        (None, Some(l)) => l.to_vec(),
        (None, None) => match crate::paths::shared_labels() {
            Some(p) if num_classes == 1000 => read_labels(&p)?,
            _ => Vec::new(),
        },
    };
    if !names.is_empty() && names.len() != num_classes {
        return Err(NamesError::Count {
            labels: names.len(),
            num_classes,
        });
    }
    Ok(names)
}

/// One ranked class.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Prediction {
    pub index: usize,
    pub label: String,
    pub prob: f32,
}

/// Numerically stable softmax.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Index of the largest value (the first, on ties).
pub fn argmax(values: &[f32]) -> Option<usize> {
    values
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
        .map(|(i, _)| i)
}

/// Indices of the `k` largest values, largest first.
pub fn top_indices(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    idx.truncate(k);
    idx
}

/// The `k` most probable classes of one row of logits.
pub fn top_k(logits: &[f32], k: usize, labels: &[String]) -> Vec<Prediction> {
    top_probs(&softmax(logits), k, labels)
}

/// The `k` most probable classes of one row of probabilities.
pub fn top_probs(probs: &[f32], k: usize, labels: &[String]) -> Vec<Prediction> {
    top_indices(probs, k)
        .into_iter()
        .map(|i| Prediction {
            index: i,
            label: labels
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("class {i}")),
            prob: probs[i],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synset_lines_lose_their_wnid() {
        let l =
            parse_labels("n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n");
        assert_eq!(l, vec!["tench, Tinca tinca", "goldfish, Carassius auratus"]);
        assert_eq!(parse_labels("roses\ntulips\n"), vec!["roses", "tulips"]);
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn labels_are_checked_and_name_their_index() {
        assert_eq!(check_labels(&["cats", "dogs, hounds"]), Ok(()));
        assert_eq!(
            check_labels(&["cats", " "]),
            Err(LabelError::Blank { index: 1 })
        );
        let err = check_labels(&["dog\r\nfake line 99.99% Egyptian cat (#285)"]).unwrap_err();
        assert!(
            matches!(
                err,
                LabelError::Control {
                    index: 0,
                    at: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("`dog\\r\\nfake line"), "{err}");
        assert_eq!(check_label(2, &"x".repeat(200)), Ok(()));
        let err = check_label(2, &"x".repeat(10_000)).unwrap_err();
        assert_eq!(
            err,
            LabelError::TooLong {
                index: 2,
                chars: 10_000
            }
        );
        assert_eq!(
            err.to_string(),
            "label 2 is 10,000 characters long; the limit is 200"
        );
    }

    #[test]
    fn lookup_prefers_first_names_then_synonyms_and_refuses_ambiguity() {
        let l = names(&[
            "Cardigan, Cardigan Welsh corgi",
            "crane",
            "cardigan",
            "crane",
            "missile",
            "projectile, missile",
            "maillot",
            "maillot, tank suit",
        ]);
        assert_eq!(find_class("cardigan", &l, 8), Ok(2));
        assert_eq!(find_class("Cardigan", &l, 8), Ok(0));
        assert_eq!(find_class("cardigan welsh CORGI", &l, 8), Ok(0));
        assert_eq!(find_class("missile", &l, 8), Ok(4));
        assert_eq!(find_class("Projectile", &l, 8), Ok(5));
        assert_eq!(find_class("tank suit", &l, 8), Ok(7));
        assert_eq!(find_class(" 5 ", &l, 8), Ok(5));
        let err = find_class("crane", &l, 8).unwrap_err();
        assert_eq!(
            err,
            ClassError::Ambiguous {
                query: "crane".into(),
                matches: vec![(1, "crane".into()), (3, "crane".into())]
            }
        );
        assert_eq!(
            err.to_string(),
            "`crane` names 2 classes: #1 crane, #3 crane; give the index of the one you mean"
        );
        assert!(
            matches!(find_class("MAILLOT", &l, 8), Err(ClassError::Ambiguous { matches, .. }) if matches.len() == 2)
        );
        assert_eq!(
            find_class("8", &l, 8).unwrap_err().to_string(),
            "class 8 does not exist: this model has 8 classes, 0…7"
        );
        assert_eq!(
            find_class("1", &[], 1).unwrap_err().to_string(),
            "class 1 does not exist: this model has 1 class, 0"
        );
        let err = find_class("corg", &l, 8).unwrap_err().to_string();
        assert!(
            err.contains("did you mean #0 Cardigan, Cardigan Welsh corgi?"),
            "{err}"
        );
    }

    #[test]
    #[cfg(not(target_family = "wasm"))]
    fn class_names_come_one_per_class_or_not_at_all() {
        let stored = names(&["cats", "dogs"]);
        assert_eq!(class_names(None, Some(&stored), 2).unwrap(), stored);
        let err = class_names(None, Some(&stored), 3).unwrap_err();
        assert!(matches!(err, NamesError::Count { labels: 2, .. }), "{err}");
        assert_eq!(err.to_string(), "2 labels for a 3-class classifier");
        // Neither a file nor stored names, and not ImageNet's 1000: no names.
        assert_eq!(class_names(None, None, 5).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn top_k_ranks_by_probability() {
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let t = top_k(&[1.0, 3.0, 2.0], 2, &labels);
        assert_eq!(t[0].index, 1);
        assert_eq!(t[1].label, "c");
        let total: f32 = softmax(&[1.0, 3.0, 2.0]).iter().sum();
        assert!((total - 1.0).abs() < 1e-6);
    }
}
