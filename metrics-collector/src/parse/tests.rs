//! Table tests of the metric line formats (the cases of Katib's own collector tests, plus
//! kestrel's: JSON numbers, epoch timestamps, garbage) and a no-panic property.

use super::*;
use proptest::prelude::*;

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn pairs(p: Vec<Parsed>) -> Vec<(String, String)> {
    p.into_iter().map(|p| (p.name, p.value)).collect()
}

fn default_parser() -> TextParser {
    TextParser::new(&[]).unwrap()
}

#[test]
fn default_filter_table() {
    let m = names(&["loss", "accuracy", "Validation-accuracy", "score"]);
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("loss=0.3", &[("loss", "0.3")]),
        (
            "epoch 1: loss = 0.25 accuracy=0.9",
            &[("loss", "0.25"), ("accuracy", "0.9")],
        ),
        (
            "Validation-accuracy=0.9312",
            &[("Validation-accuracy", "0.9312")],
        ),
        ("score=-7.53e-05", &[("score", "-7.53e-05")]),
        ("score=1.5E+3", &[("score", "1.5E+3")]),
        ("score=+4", &[("score", "+4")]),
        ("loss=.5", &[("loss", ".5")]),
        ("epoch=3 loss=0.1", &[("loss", "0.1")]),
        ("loss=abc", &[]),
        ("no metrics here", &[]),
        ("lossy=0.1", &[]),
        ("", &[]),
    ];
    for (line, want) in cases {
        let got = pairs(default_parser().parse_line(line, &m));
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want, "line {line:?}");
    }
}

#[test]
fn leading_rfc3339_token_is_the_timestamp() {
    let m = names(&["loss"]);
    let p = default_parser().parse_line("2024-03-01T10:00:00Z loss=0.5", &m);
    assert_eq!(p[0].time, Some("2024-03-01T10:00:00Z".parse().unwrap()));
    let p = default_parser().parse_line("2024-03-01T10:00:00+02:00 loss=0.5", &m);
    assert_eq!(p[0].time, Some("2024-03-01T08:00:00Z".parse().unwrap()));
    assert_eq!(
        default_parser().parse_line("step 3 loss=0.5", &m)[0].time,
        None
    );
}

#[test]
fn custom_filters() {
    let p = TextParser::new(&[r"(\w+):\s*([+-]?\d+(?:\.\d+)?)".into()]).unwrap();
    assert_eq!(
        pairs(p.parse_line("acc: 0.91 | loss: 1.2", &names(&["acc", "loss"]))),
        [("acc".into(), "0.91".into()), ("loss".into(), "1.2".into())]
    );
    // Katib's DARTS genotype filter keeps a non-numeric value.
    let g = TextParser::new(&[r"([\w-]+)=(Genotype.*)".into()]).unwrap();
    let v = g.parse_line(
        "Best-Genotype=Genotype(normal=[[('sep',0)]])",
        &names(&["Best-Genotype"]),
    );
    assert_eq!(v[0].value, "Genotype(normal=[[('sep',0)]])");
    assert!(matches!(
        TextParser::new(&["(a".into()]),
        Err(ParseError::BadRegex { .. })
    ));
    assert!(matches!(
        TextParser::new(&[r"(\w+)=\d+".into()]),
        Err(ParseError::MissingGroups(_))
    ));
}

#[test]
fn json_lines() {
    let m = names(&["loss", "acc"]);
    let p = json_line(
        r#"{"loss": "0.5", "acc": 0.75, "epoch": "1", "timestamp": "2024-01-01T00:00:00Z"}"#,
        &m,
    );
    assert_eq!(
        pairs(p.clone()),
        [("loss".into(), "0.5".into()), ("acc".into(), "0.75".into())]
    );
    assert_eq!(p[0].time, Some("2024-01-01T00:00:00Z".parse().unwrap()));
    let p = json_line(r#"{"loss": "1", "timestamp": 1700000000.5}"#, &m);
    assert_eq!(
        p[0].time,
        Some(jiff::Timestamp::from_millisecond(1_700_000_000_500).unwrap())
    );
    let p = json_line(r#"{"loss": "1", "timestamp": "1700000000"}"#, &m);
    assert_eq!(
        p[0].time,
        Some(jiff::Timestamp::from_second(1_700_000_000).unwrap())
    );
    for garbage in [
        "",
        "not json",
        "[1,2]",
        r#"{"loss": null}"#,
        r#"{"loss": {"a": 1}}"#,
        "{\"loss\": \"1\"",
    ] {
        assert!(json_line(garbage, &m).is_empty(), "{garbage:?}");
    }
    assert!(
        json_line(r#"{"loss": "1", "timestamp": 1e300}"#, &m)[0]
            .time
            .is_none()
    );
}

#[test]
fn katibs_file_collector_filter_with_literal_braces_works_as_in_go() {
    // Go reads a '{' that starts no repetition as a literal; Katib's example relies on it.
    let p =
        TextParser::new(&[r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}".to_string()])
            .expect("accepted as Go accepts it");
    let got = p.parse_line(
        "{metricName: accuracy, metricValue: 0.8075}",
        &names(&["accuracy"]),
    );
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].name.as_str(), got[0].value.as_str()),
        ("accuracy", "0.8075")
    );
}

proptest! {
    #[test]
    fn parsers_never_panic(line in ".{0,200}", bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let m = names(&["loss", "acc"]);
        let _ = default_parser().parse_line(&line, &m);
        let _ = json_line(&line, &m);
        let lossy = String::from_utf8_lossy(&bytes);
        let _ = default_parser().parse_line(&lossy, &m);
        let _ = json_line(&lossy, &m);
    }
}
