//! What every layer leans on and no concern owns: crash-safe writes ([`atomic`]), the
//! observer long work reports to ([`observe`]), work shared out over the cores ([`parallel`]),
//! and the process's peak memory ([`memory`]).

pub mod atomic;
pub mod memory;
pub mod observe;
pub mod parallel;
