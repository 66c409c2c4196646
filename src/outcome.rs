//! The one shape every fallible binding returns: `{ <value>: T | null, error: NativeError | null }`.
//! Domain failures travel as values, not thrown napi errors (see errors.rs), and the TS layer's
//! `check()` turns `error` into the right class.

/// Declares `#[napi(object)] pub struct $name { pub $field: Option<$ty>, pub error: Option<NativeError> }`
/// with `From<Result<$ty, E>>` for any `E: Into<NativeError>`.
macro_rules! outcome {
    ($(#[$meta:meta])* $name:ident { $field:ident: $ty:ty }) => {
        $(#[$meta])*
        #[napi_derive::napi(object)]
        pub struct $name {
            pub $field: Option<$ty>,
            pub error: Option<$crate::errors::NativeError>,
        }

        impl<E: Into<$crate::errors::NativeError>> From<::std::result::Result<$ty, E>> for $name {
            fn from(result: ::std::result::Result<$ty, E>) -> Self {
                match result {
                    Ok(value) => $name { $field: Some(value), error: None },
                    Err(error) => $name { $field: None, error: Some(error.into()) },
                }
            }
        }
    };
}

pub(crate) use outcome;
