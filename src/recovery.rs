//! Recovery: the latest usable snapshot, then the events after it (under construction).
