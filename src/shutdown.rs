//! Binding for the native shutdown safety net.

use std::sync::Mutex;
use std::time::Duration;

use napi_derive::napi;
use qvac_managed_core::safety_net::SafetyNet;

use crate::{held, supervisor};

static ARMED: Mutex<Vec<SafetyNet>> = Mutex::new(Vec::new());

/// Arms the net: after `ms` the process releases its locks and markers, kills its supervised
/// children and `_exit(code)`s, whatever the JS thread is doing. `disarmSafetyNet()` cancels.
#[napi(catch_unwind)]
pub fn arm_safety_net(ms: u32, code: i32) {
    let net = SafetyNet::arm(Duration::from_millis(ms.into()), code, || {
        held::release_all();
        supervisor::kill_all_supervised();
    });
    ARMED.lock().unwrap_or_else(|p| p.into_inner()).push(net);
}

#[napi(catch_unwind)]
pub fn disarm_safety_net() {
    for net in ARMED.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
        net.disarm();
    }
}
