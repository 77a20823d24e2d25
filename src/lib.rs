//! tutorlog
