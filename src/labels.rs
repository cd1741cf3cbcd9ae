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

/// The `k` most probable classes of one row of logits.
pub fn top_k(logits: &[f32], k: usize, labels: &[String]) -> Vec<Prediction> {
    let probs = softmax(logits);
    let mut idx: Vec<usize> = (0..probs.len()).collect();
    idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    idx.into_iter()
        .take(k)
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
