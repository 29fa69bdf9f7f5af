//! The .deb writer (in progress).
