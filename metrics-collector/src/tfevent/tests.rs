//! tfevents files written here (TFRecord framing, Event protos) read back as Katib reads
//! them.

use prost::Message;

use super::*;

/// An event at `step` with scalar `tag` = `value`, TF1 style or TF2 (tensor) style.
fn event(step: i64, tag: &str, value: f32, tf2: bool) -> Vec<u8> {
    let v = if tf2 {
        SummaryValue {
            tag: tag.into(),
            simple_value: None,
            tensor: Some(TensorProto {
                dtype: DT_FLOAT,
                tensor_content: value.to_le_bytes().to_vec(),
                float_val: vec![],
                double_val: vec![],
            }),
        }
    } else {
        SummaryValue {
            tag: tag.into(),
            simple_value: Some(value),
            tensor: None,
        }
    };
    let e = Event {
        wall_time: 1_700_000_000.5 + step as f64,
        step,
        summary: Some(Summary { value: vec![v] }),
    };
    record(&e.encode_to_vec())
}

#[test]
fn the_crc_is_tfrecords() {
    // CRC-32C("123456789") = 0xE3069283 (the standard check value), masked as TFRecord does.
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(
        masked_crc(b"123456789"),
        0xE306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8)
    );
}

#[test]
fn tf1_and_tf2_scalars_are_read_in_order_with_katibs_names() {
    let mut file = record(
        &Event {
            wall_time: 1.0,
            step: 0,
            summary: None,
        }
        .encode_to_vec(),
    );
    file.extend(event(1, "accuracy", 0.5, false));
    file.extend(event(2, "accuracy", 0.75, true));
    file.extend(event(2, "loss", 1.5, true));
    let metrics = vec!["accuracy".to_string(), "train/loss".to_string()];
    let (logs, err) = scalars(&file, Path::new("/logs/train"), &metrics);
    assert_eq!(err, None);
    let got: Vec<(&str, &str)> = logs
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("accuracy", "0.5"),
            ("accuracy", "0.75"),
            ("train/loss", "1.5")
        ]
    );
    assert_eq!(logs[0].time.as_second(), 1_700_000_001);
    // train/loss only from files in a directory ending with "train".
    let (logs, _) = scalars(&file, Path::new("/logs/test"), &metrics);
    assert!(logs.iter().all(|l| l.name == "accuracy"));
}

#[test]
fn damage_stops_the_reading_and_a_partial_tail_waits() {
    let mut file = event(1, "accuracy", 0.5, false);
    let second = event(2, "accuracy", 0.6, false);
    // A partial record at the end: still being written, not an error.
    let mut partial = file.clone();
    partial.extend(&second[..second.len() - 3]);
    let (recs, err) = records(&partial);
    assert_eq!((recs.len(), err), (1, None));
    // A flipped byte in the data: the records before it are kept.
    let mut damaged = second.clone();
    damaged[14] ^= 0xff;
    file.extend(&damaged);
    let (recs, err) = records(&file);
    assert_eq!(recs.len(), 1);
    assert!(matches!(err, Some(RecordError::Checksum(_))), "{err:?}");
    // An absurd length is refused before anything is allocated.
    let mut huge = (u64::MAX).to_le_bytes().to_vec();
    huge.extend(masked_crc(&huge).to_le_bytes());
    huge.extend([0u8; 8]);
    assert!(matches!(records(&huge).1, Some(RecordError::TooLong(0, _))));
}

#[test]
fn files_are_found_under_the_directory() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("train")).unwrap();
    std::fs::write(
        d.path().join("train/events.out.tfevents.1.host"),
        event(1, "loss", 0.25, true),
    )
    .unwrap();
    std::fs::write(d.path().join("notes.txt"), "loss=9").unwrap();
    let (logs, warnings) = read_dir(d.path(), &["train/loss".to_string()]);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].value, "0.25");
}

#[test]
fn a_file_over_the_size_bound_is_left_out_not_read() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("events.out.tfevents.1.a"),
        event(1, "loss", 0.5, false),
    )
    .unwrap();
    // Sparse: no disk or memory is used unless it is read.
    let huge = std::fs::File::create(d.path().join("events.out.tfevents.2.b")).unwrap();
    huge.set_len(MAX_FILE_BYTES + 1).unwrap();
    let (logs, warnings) = read_dir(d.path(), &["loss".to_string()]);
    assert_eq!(logs.len(), 1);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("over the"), "{warnings:?}");
}
