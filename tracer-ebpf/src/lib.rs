#![no_std]
// This crate's programs live in the `tracer` binary target, built for bpfel by aya-build.
// The library target exists so that `tracer` can name this crate as a build-dependency.
