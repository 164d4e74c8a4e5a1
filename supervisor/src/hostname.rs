//! `uname`: the target's hostname in `nodename`, the rest of `struct utsname` from this machine
//! (`feature.hostname`). The hostname is asked of the intproxy once per worker.

use mirrord_protocol::{LayerRequest, LayerResponse};

use crate::{
    serve::{Outcome, Worker},
    sys::{self, Notification},
};

/// Length of one `utsname` field, with its NUL.
const FIELD: usize = 65;

impl Worker {
    /// `uname(buffer)`.
    pub(crate) fn uname(&mut self, call: &Notification) -> Outcome {
        let hostname = match &self.hostname {
            Some(hostname) => hostname.clone(),
            None => match self.remote.request(LayerRequest::GetHostname) {
                Ok(LayerResponse::Hostname(hostname)) => {
                    self.hostname = Some(hostname.clone());
                    hostname
                }
                Ok(_) | Err(_) => return Outcome::Continue,
            },
        };
        let Ok(mut bytes) = sys::uname_bytes() else {
            return Outcome::Continue;
        };
        let name = hostname.as_bytes();
        let name = &name[..name.len().min(FIELD - 1)];
        let nodename = &mut bytes[FIELD..2 * FIELD];
        nodename.fill(0);
        nodename[..name.len()].copy_from_slice(name);
        if !self.shared.listener.id_valid(call.id) {
            return Outcome::Gone;
        }
        match sys::write_memory(call.pid, call.args[0], &bytes) {
            Ok(()) => Outcome::Value(0),
            Err(_) => Outcome::Fail(libc::EFAULT),
        }
    }
}
