//! The security suite: one attack per test, each failing before its
//! control and passing after it. `docs/SECURITY.md` maps every asset and
//! threat to its control and to the test here that shows it.
//!
//! - [`upstream_values`]: hostile answers from 3CX, HighLevel or a
//!   workflow's trigger URL.
//! - [`redirects`]: secrets never follow a redirect.
//! - [`slow_clients`]: slow and abusive HTTP clients cannot stop tenants.
//! - [`operator_surfaces`]: `/metrics` and the status page's sign-in.
//! - [`installs`]: OAuth install states.
//! - [`refresh`]: several hosts refreshing one grant.
//! - [`pbx_token`]: several hosts sharing one 3CX token.
//! - [`webhooks`]: HighLevel's calls to the host.
//! - [`key_rotation`]: `keys rotate` under crashes and running hosts.
//! - [`runaway`]: replacement components that never return.

mod installs;
mod key_rotation;
mod operator_surfaces;
mod pbx_token;
mod redirects;
mod refresh;
mod runaway;
mod slow_clients;
mod upstream_values;
mod webhooks;
