//! Wiring for `meshd serve`.
