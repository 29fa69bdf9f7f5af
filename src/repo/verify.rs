//! `verify`: checks the pool, the served tree and the catalog against each other.
