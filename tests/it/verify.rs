//! repoctl verify: every kind of damage found by name, and --repair.
