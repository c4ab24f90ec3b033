//! The fleet view as JSON, in the shape KEDA's `metrics-api` scaler reads: one number at a
//! `valueLocation` such as `queue_depth` or `coordinators.default.backpressure_hard`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use super::lag::lock;
use super::state::FleetState;
use crate::event::CoordinatorId;
use crate::fleet::CoordinatorView;

/// Where the JSON API lives.
pub const API_PREFIX: &str = "/api/v1/coordinators";

#[derive(Serialize)]
struct All {
    coordinators: BTreeMap<CoordinatorId, CoordinatorView>,
}

#[derive(Serialize)]
struct Problem {
    error: String,
}

/// `GET /api/v1/coordinators` (every coordinator, keyed by id) and
/// `GET /api/v1/coordinators/{coordinator_id}` (one; 404 while the bridge knows no instance of
/// it, so that KEDA reports an error and falls back instead of reading zero).
pub(crate) fn router(state: Arc<Mutex<FleetState>>) -> Router {
    Router::new()
        .route(API_PREFIX, get(all))
        .route(&format!("{API_PREFIX}/{{coordinator_id}}"), get(one))
        .with_state(state)
}

async fn all(State(state): State<Arc<Mutex<FleetState>>>) -> Json<All> {
    let coordinators = lock(&state)
        .views()
        .into_iter()
        .map(|v| (v.coordinator_id.clone(), v))
        .collect();
    Json(All { coordinators })
}

async fn one(State(state): State<Arc<Mutex<FleetState>>>, Path(id): Path<String>) -> Response {
    let problem = |status, error: String| (status, Json(Problem { error })).into_response();
    let id = match CoordinatorId::new(id) {
        Ok(id) => id,
        Err(e) => return problem(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match lock(&state).view(&id) {
        Some(view) => Json(view).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            format!("no live instance of coordinator {id}"),
        ),
    }
}
