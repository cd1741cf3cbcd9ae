//! Class names against the ImageNet list in ../shared: lookup by name (first names before
//! synonyms, exact case before any case, ambiguity an error) and the checks every label
//! passes.

mod common;

use googlenet::labels::{self, ClassError, parse_labels};

fn imagenet() -> Option<Vec<String>> {
    let shared = common::shared()?;
    Some(parse_labels(
        &std::fs::read_to_string(shared.join("data/synset_words.txt")).unwrap(),
    ))
}

#[test]
fn imagenet_names_find_their_own_class() {
    let Some(names) = imagenet() else { return };
    assert_eq!(names.len(), 1000);
    let find = |q: &str| labels::find_class(q, &names, 1000);
    assert_eq!(find("cardigan"), Ok(474));
    assert_eq!(find("Cardigan"), Ok(264));
    assert_eq!(find("Cardigan Welsh corgi"), Ok(264));
    assert_eq!(find("egyptian cat"), Ok(285));
    assert_eq!(find("missile"), Ok(657));
    assert_eq!(find("projectile"), Ok(744));
    assert_eq!(find("tank suit"), Ok(639));
    assert_eq!(find("Pembroke Welsh corgi"), Ok(263));
    let pair = |q: &str| match find(q) {
        Err(ClassError::Ambiguous { matches, .. }) => {
            matches.iter().map(|m| m.0).collect::<Vec<_>>()
        }
        other => panic!("{q}: expected an ambiguity, got {other:?}"),
    };
    assert_eq!(pair("crane"), [134, 517]);
    assert_eq!(pair("maillot"), [638, 639]);
    // Every class is reachable by its first name, unless another class has the same one.
    for (i, label) in names.iter().enumerate() {
        let first = labels::first_name(label);
        let twins: Vec<usize> = (0..1000)
            .filter(|&j| labels::first_name(&names[j]) == first)
            .collect();
        match find(first) {
            Ok(j) => assert_eq!((j, twins.len()), (i, 1), "{first}"),
            Err(ClassError::Ambiguous { matches, .. }) => assert_eq!(
                matches.iter().map(|m| m.0).collect::<Vec<_>>(),
                twins,
                "{first}"
            ),
            Err(e) => panic!("{first}: {e}"),
        }
    }
    // ImageNet's labels pass the checks a saved model's labels must (the longest is 121
    // characters).
    assert_eq!(labels::check_labels(&names), Ok(()));
}
