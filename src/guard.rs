//! Nothing crosses into Node as a panic. Synchronous bindings carry `#[napi(catch_unwind)]`;
//! futures handed to Node go through [`spawn`], and environment cleanup hooks through
//! [`contain`], so an unexpected panic becomes a rejected promise (or is contained) instead of
//! unwinding into the JS engine.

use std::any::Any;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};

use futures_util::FutureExt;
use napi::bindgen_prelude::{PromiseRaw, ToNapiValue};
use napi::{Env, Error, Result, Status};

/// `env.spawn_future(fut)`, with a panic in `fut` turned into a rejection that says it is a bug.
pub fn spawn<'env, T, F>(env: &'env Env, fut: F) -> Result<PromiseRaw<'env, T>>
where
    T: 'static + Send + ToNapiValue,
    F: 'static + Send + Future<Output = Result<T>>,
{
    env.spawn_future(async move {
        match AssertUnwindSafe(fut).catch_unwind().await {
            Ok(result) => result,
            Err(payload) => Err(panic_error(payload.as_ref())),
        }
    })
}

/// Runs `f` (an environment cleanup hook, called by Node through C) and swallows a panic: there
/// is no JS caller to report it to, and unwinding into Node would abort the process.
pub fn contain(f: impl FnOnce()) {
    let _ = panic::catch_unwind(AssertUnwindSafe(f));
}

fn panic_error(payload: &(dyn Any + Send)) -> Error {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    Error::new(
        Status::GenericFailure,
        format!("qvac-managed internal error (a bug; please report it): {what}"),
    )
}
