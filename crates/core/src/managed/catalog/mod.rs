//! The model catalog of `@qvac/ai-sdk-provider@0.7.0`: SDK model constants and the public catalog
//! ids that map to them. The data is generated (see `data.rs`); this module only looks it up.

// Generated; its layout is the generator's, so `--check` can compare it byte for byte.
#[rustfmt::skip]
mod data;

pub use data::SOURCE;

/// Which OpenAI-compatible endpoint a model serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Embedding,
    Image,
    Ocr,
    Speech,
    Transcription,
    Translation,
}

/// True for an SDK constant name or a public catalog id.
pub fn is_known(name: &str) -> bool {
    endpoint(name).is_some()
}

/// The SDK constant the serve must load: a catalog id resolves to its constant; anything else
/// passes through unchanged.
pub fn resolve_constant(name: &str) -> &str {
    data::CATALOG_IDS
        .binary_search_by(|(id, _)| id.cmp(&name))
        .map(|i| data::CATALOG_IDS[i].1)
        .unwrap_or(name)
}

/// The endpoint category of a constant or catalog id.
pub fn endpoint(name: &str) -> Option<Endpoint> {
    model(name).map(|(_, endpoint, _)| *endpoint)
}

/// The size in bytes of a constant's or catalog id's model file, as the source package states it.
pub fn model_size(name: &str) -> Option<u64> {
    model(name).map(|(_, _, size)| *size)
}

fn model(name: &str) -> Option<&'static (&'static str, Endpoint, u64)> {
    let constant = resolve_constant(name);
    data::MODELS
        .binary_search_by(|(n, _, _)| n.cmp(&constant))
        .ok()
        .map(|i| &data::MODELS[i])
}

/// Number of SDK constants in the catalog.
pub fn constant_count() -> usize {
    data::MODELS.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(746, constant_count());
        assert!(is_known("QWEN3_600M_INST_Q4"));
        assert!(is_known("qwen3.5-9b"));
        assert_eq!(
            "QWEN3_5_9B_MULTIMODAL_Q4_K_M",
            resolve_constant("qwen3.5-9b")
        );
        assert_eq!("WHISPER_Q8_0", resolve_constant("WHISPER_Q8_0"));
        assert_eq!(Some(Endpoint::Transcription), endpoint("WHISPER_Q8_0"));
        assert!(!is_known(""));
        assert!(!is_known("qwen3.5-9B"));
        assert!(!is_known("NOT_A_MODEL"));
    }

    #[test]
    fn data_is_sorted_for_binary_search() {
        assert!(data::MODELS.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(data::CATALOG_IDS.windows(2).all(|w| w[0].0 < w[1].0));
        // Every catalog id points at a known constant.
        assert!(data::CATALOG_IDS
            .iter()
            .all(|(_, c)| data::MODELS.binary_search_by(|(n, _, _)| n.cmp(c)).is_ok()));
    }
}
