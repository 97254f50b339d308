//! Generated scenarios for tests and benchmarks.
//!
//! Map:
//! - [`large`]: a realistic multi-region cloud deployment of any size
//!   (IPsec hub-and-spoke plus a WireGuard management star), a pure
//!   function of `(sites, seed)`; used by the benchmarks.
//! - [`star::star_text`]: a WireGuard star of any size (render and simulator
//!   benchmarks).
//! - [`arb`]: proptest strategies producing random *valid* scenarios
//!   ([`arb_scenario`]) for property tests of every stage.
//! - [`deploy`]: proptest strategies producing random *deployable*
//!   scenarios ([`arb_deployment`]): disjoint ranges, no timeline, files
//!   that render; for properties that run the rendered files.
//! - [`to_toml`]: writes a [`ScenarioFile`] back as scenario text.
//!
//! This is a test-support crate (`publish = false`): `proptest` is a normal
//! dependency on purpose.

pub mod arb;
pub mod deploy;
pub mod large;
pub mod star;

use vpnsim_topology::ScenarioFile;

pub use arb::arb_scenario;
pub use deploy::arb_deployment;
pub use large::large;
pub use star::star_text;

/// A format value from JSON holding its required fields; every other field
/// takes its serde default, so fields added to the format later never break
/// the generators.
///
/// # Panics
/// When `value` lacks a required field (a bug in this crate).
pub(crate) fn de<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    match serde_json::from_value(value) {
        Ok(v) => v,
        Err(error) => {
            panic!(
                "scenario-gen built an invalid {}: {error}",
                std::any::type_name::<T>()
            )
        }
    }
}

/// Writes a scenario as pretty TOML, the way a user would write it.
///
/// Fails only for values the TOML writer cannot represent; nothing this
/// crate generates is such a value.
pub fn try_to_toml(file: &ScenarioFile) -> Result<String, toml::ser::Error> {
    toml::to_string_pretty(file)
}

/// Writes a scenario as pretty TOML.
///
/// # Panics
/// When the file holds a value TOML cannot carry (see [`try_to_toml`]);
/// every scenario this crate generates can be written.
pub fn to_toml(file: &ScenarioFile) -> String {
    match try_to_toml(file) {
        Ok(text) => text,
        Err(error) => {
            panic!(
                "scenario `{}` cannot be written as TOML: {error}",
                file.scenario.name
            )
        }
    }
}
