//! Cancel scopes and deadlines: cancelling, deadlines and effective deadlines, shielding, nesting, reuse, `fail_after` and `finally`, kept and linked scopes, the timers behind them, and cancel reasons (rules C, S, D, H and K of the semantics chapter).
//!
//! One test binary per family of rules (a binary links once; each file is a module).

mod cancel;
mod checkpoint;
mod deadline;
mod deferred;
mod effective_deadline;
mod fail;
mod finally;
mod kept;
mod links;
mod nesting;
mod reason;
mod reuse;
mod shield;
mod timers;
