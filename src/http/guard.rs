//! The last line of defence of every request: a handler that panics or outlives the
//! request timeout is answered as [`ApiError::Internal`] / [`ApiError::Timeout`], inside
//! CORS, so that a browser can read the problem.
//!
//! One layer of ours for what `tower-http`'s `CatchPanic` and tower's `Timeout` behind
//! axum's `HandleError` did: those box every request's future and re-box its body
//! (three allocations per request, `tests/allocations`); this one does neither.

use std::convert::Infallible;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use tokio::time::{Sleep, sleep};
use tower::{Layer, Service};

use super::error::ApiError;

/// See the module; `timeout` bounds each request.
#[derive(Debug, Clone, Copy)]
pub(super) struct GuardLayer {
    pub timeout: Duration,
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            timeout: self.timeout,
        }
    }
}

/// See [`GuardLayer`].
#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
    timeout: Duration,
}

impl<S> Service<Request> for Guard<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Guarded<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
            Ok(answer) => Guarded::Running {
                answer,
                deadline: sleep(self.timeout),
            },
            Err(_panic) => Guarded::Panicked,
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's answer under [`Guard`].
    #[project = Project]
    pub enum Guarded<F> {
        /// The handler runs, against the deadline.
        Running {
            #[pin]
            answer: F,
            #[pin]
            deadline: Sleep,
        },
        /// It panicked before it returned a future.
        Panicked,
    }
}

impl<F> Future for Guarded<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            Project::Running { answer, deadline } => {
                match catch_unwind(AssertUnwindSafe(|| answer.poll(cx))) {
                    Ok(Poll::Ready(answered)) => Poll::Ready(answered),
                    Ok(Poll::Pending) => match deadline.poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Ok(ApiError::Timeout.into_response())),
                        Poll::Pending => Poll::Pending,
                    },
                    Err(_panic) => Poll::Ready(Ok(panicked())),
                }
            }
            Project::Panicked => Poll::Ready(Ok(panicked())),
        }
    }
}

/// A panic's answer (the panic's message went to the log through the panic hook).
fn panicked() -> Response {
    ApiError::Internal("a handler panicked".into()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use tower::ServiceExt as _;

    fn guarded<F, Fut>(handler: F) -> Guard<tower::util::ServiceFn<F>>
    where
        F: FnMut(Request) -> Fut,
        Fut: Future<Output = Result<Response, Infallible>>,
    {
        GuardLayer {
            timeout: Duration::from_millis(200),
        }
        .layer(tower::service_fn(handler))
    }

    async fn status(
        service: impl Service<Request, Response = Response, Error = Infallible>,
    ) -> StatusCode {
        let request = Request::new(Body::empty());
        service.oneshot(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn answers_pass_through() {
        let ok = guarded(|_| async { Ok(StatusCode::CREATED.into_response()) });
        assert_eq!(status(ok).await, StatusCode::CREATED);
    }

    #[tokio::test]
    async fn a_panic_in_the_handler_is_a_500() {
        let panics = guarded(|_| async {
            if true {
                panic!("a bug");
            }
            Ok(StatusCode::OK.into_response())
        });
        assert_eq!(status(panics).await, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn a_panic_before_the_future_is_a_500() {
        let panics = guarded(
            |_: Request| -> std::future::Ready<Result<Response, Infallible>> {
                panic!("a bug before any future")
            },
        );
        assert_eq!(status(panics).await, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_past_the_timeout_is_answered_for() {
        let slow = guarded(|_| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(StatusCode::OK.into_response())
        });
        let expected = ApiError::Timeout.into_response().status();
        assert_eq!(status(slow).await, expected);
    }
}
