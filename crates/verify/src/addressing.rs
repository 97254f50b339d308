//! TODO(in progress): checks of this module.

use vpnsim_topology::Diagnostic;

use crate::Ctx;

pub fn check(_ctx: &Ctx<'_>) -> Vec<Diagnostic> {
    Vec::new()
}
