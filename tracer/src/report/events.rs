//! `tracer tracepoint` reports.
