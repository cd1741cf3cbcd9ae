//! Class names and turning logits into a ranked list.

use serde::Serialize;

/// Parse `synset_words.txt` (`n01440764 tench, Tinca tinca` per line) or a plain list of
/// names, one per line. The wnid, when present, is dropped.
pub fn parse_labels(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once(' ') {
            Some((wnid, rest)) if wnid.len() == 9 && wnid.starts_with('n') && wnid[1..].bytes().all(|b| b.is_ascii_digit()) => {
                rest.to_string()
            }
            _ => l.to_string(),
        })
        .collect()
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
    values.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0))).map(|(i, _)| i)
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
            label: labels.get(i).cloned().unwrap_or_else(|| format!("class {i}")),
            prob: probs[i],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synset_lines_lose_their_wnid() {
        let l = parse_labels("n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n");
        assert_eq!(l, vec!["tench, Tinca tinca", "goldfish, Carassius auratus"]);
        assert_eq!(parse_labels("roses\ntulips\n"), vec!["roses", "tulips"]);
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
