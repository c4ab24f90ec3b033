//! Feedback over HTTP: the `POST /feedback` receiver and the matching emitter.
