//! Table tests of Experiment parsing: defaults, and one field-path error per bad input.
