//! A deny-by-default stand-in for the WASI imports a `wasm32-wasip2` Rust guest links.
//!
//! Rust's standard library makes a policy component import a handful of WASI
//! interfaces (environment, exit, stdio streams) even when the policy never uses them.
//! The full WASI implementation grants far more than a policy may have, and its
//! blocking paths do not belong on async workers. This layer provides just enough:
//!
//! - the environment, arguments and working directory are empty, and no directory
//!   is preopened;
//! - stdout and stderr are accepted and become rate-limited log lines of the tenant;
//! - `exit` ends the call with a trap;
//! - the monotonic clock and randomness work;
//! - every other WASI function (files, sockets, the wall clock, stdin…) traps if called.
//!
//! Definitions are made under the exact versioned names the component imports, so any
//! `0.2.x` guest links.

use super::store_data::{StoreData, monotonic_ns};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{
    ComponentType, Lift, Linker, LinkerInstance, Lower, Resource, ResourceType,
};
use wasmtime::{Engine, Result};

/// The host's handle for a guest's stdout (rep 1) or stderr (rep 2).
struct OutputStream;
/// `wasi:io/error.error`; never created.
struct IoError;
/// `wasi:io/poll.pollable`; always ready.
struct Pollable;
/// `wasi:filesystem/types.descriptor`; never created, as nothing is preopened.
struct Descriptor;

const STDOUT: u32 = 1;
const STDERR: u32 = 2;

/// `wasi:io/streams.stream-error`.
#[derive(ComponentType, Lift, Lower)]
#[component(variant)]
enum StreamError {
    #[component(name = "last-operation-failed")]
    LastOperationFailed(Resource<IoError>),
    #[component(name = "closed")]
    Closed,
}

/// `wasi:clocks/wall-clock.datetime` is not offered; monotonic time is.
type Instant = u64;

/// Defines the WASI imports of `component` in `linker`, then makes every import that
/// is still undefined trap when called.
pub(crate) fn define(
    linker: &mut Linker<StoreData>,
    engine: &Engine,
    component: &wasmtime::component::Component,
) -> Result<()> {
    for (name, item) in component.component_type().imports(engine) {
        let ComponentItem::ComponentInstance(imported) = item.ty else {
            continue;
        };
        let mut instance = linker.instance(name)?;
        // An interface that `use`s a resource re-exports its type (e.g.
        // `wasi:filesystem/types` names `output-stream`), so each resource this layer
        // implements is defined, as the same host type, wherever it appears.
        for (export, ty) in imported.exports(engine) {
            if !matches!(ty.ty, ComponentItem::Resource(_)) {
                continue;
            }
            match export {
                "output-stream" => output_stream_type(&mut instance)?,
                "error" => error_type(&mut instance)?,
                "pollable" => pollable_type(&mut instance)?,
                "descriptor" => {
                    instance.resource(
                        "descriptor",
                        ResourceType::host::<Descriptor>(),
                        |_, _| Ok(()),
                    )?;
                }
                _ => {}
            }
        }
        match name.split('@').next().unwrap_or(name) {
            "wasi:cli/environment" => environment(&mut instance)?,
            "wasi:cli/exit" => exit(&mut instance)?,
            "wasi:cli/stdout" => {
                instance.func_wrap("get-stdout", |_, (): ()| {
                    Ok((Resource::<OutputStream>::new_own(STDOUT),))
                })?;
            }
            "wasi:cli/stderr" => {
                instance.func_wrap("get-stderr", |_, (): ()| {
                    Ok((Resource::<OutputStream>::new_own(STDERR),))
                })?;
            }
            "wasi:io/poll" => poll(&mut instance)?,
            // No directory is ever preopened, so a guest's libc fails file access
            // with an ordinary error instead of trapping.
            "wasi:filesystem/preopens" => {
                instance.func_wrap("get-directories", |_, (): ()| {
                    Ok((Vec::<(Resource<Descriptor>, String)>::new(),))
                })?;
            }
            "wasi:io/streams" => streams(&mut instance)?,
            "wasi:clocks/monotonic-clock" => {
                instance.func_wrap("now", |_, (): ()| Ok((monotonic_ns() as Instant,)))?;
                instance.func_wrap("resolution", |_, (): ()| Ok((1u64,)))?;
            }
            "wasi:random/random" => random(&mut instance, "get-random-bytes", "get-random-u64")?,
            "wasi:random/insecure" => random(
                &mut instance,
                "get-insecure-random-bytes",
                "get-insecure-random-u64",
            )?,
            "wasi:random/insecure-seed" => {
                instance.func_wrap("insecure-seed", |mut store, (): ()| {
                    let data = store.data_mut();
                    Ok(((data.next_random(), data.next_random()),))
                })?;
            }
            _ => {}
        }
    }
    linker.define_unknown_imports_as_traps(component)
}

fn environment(instance: &mut LinkerInstance<'_, StoreData>) -> Result<()> {
    instance.func_wrap("get-environment", |_, (): ()| {
        Ok((Vec::<(String, String)>::new(),))
    })?;
    instance.func_wrap("get-arguments", |_, (): ()| Ok((Vec::<String>::new(),)))?;
    instance.func_wrap("initial-cwd", |_, (): ()| Ok((None::<String>,)))
}

fn exit(instance: &mut LinkerInstance<'_, StoreData>) -> Result<()> {
    instance.func_wrap("exit", |_, (status,): (Result<(), ()>,)| -> Result<()> {
        wasmtime::bail!("policy called exit({})", if status.is_ok() { 0 } else { 1 })
    })
}

fn output_stream_type(instance: &mut LinkerInstance<'_, StoreData>) -> Result<()> {
    instance.resource(
        "output-stream",
        ResourceType::host::<OutputStream>(),
        |_, _| Ok(()),
    )
}

fn error_type(instance: &mut LinkerInstance<'_, StoreData>) -> Result<()> {
    instance.resource("error", ResourceType::host::<IoError>(), |_, _| Ok(()))
}

fn pollable_type(instance: &mut LinkerInstance<'_, StoreData>) -> Result<()> {
    instance.resource("pollable", ResourceType::host::<Pollable>(), |_, _| Ok(()))
}

fn poll(instance: &mut LinkerInstance<'_, StoreData>) -> Result<()> {
    instance.func_wrap(
        "[method]pollable.ready",
        |_, (_,): (Resource<Pollable>,)| Ok((true,)),
    )?;
    instance.func_wrap(
        "[method]pollable.block",
        |_, (_,): (Resource<Pollable>,)| Ok(()),
    )
}

fn streams(instance: &mut LinkerInstance<'_, StoreData>) -> Result<()> {
    type Ret = Result<(Result<(), StreamError>,)>;
    fn write(
        mut store: wasmtime::StoreContextMut<'_, StoreData>,
        this: &Resource<OutputStream>,
        bytes: &[u8],
    ) -> Ret {
        match this.rep() {
            STDOUT => store.data_mut().write_output(false, bytes),
            STDERR => store.data_mut().write_output(true, bytes),
            _ => return Ok((Err(StreamError::Closed),)),
        }
        Ok((Ok(()),))
    }
    instance.func_wrap(
        "[method]output-stream.check-write",
        |_, (_,): (Resource<OutputStream>,)| Ok((Ok::<u64, StreamError>(64 * 1024),)),
    )?;
    instance.func_wrap(
        "[method]output-stream.write",
        |store, (this, bytes): (Resource<OutputStream>, Vec<u8>)| write(store, &this, &bytes),
    )?;
    instance.func_wrap(
        "[method]output-stream.blocking-write-and-flush",
        |store, (this, bytes): (Resource<OutputStream>, Vec<u8>)| write(store, &this, &bytes),
    )?;
    for flush in [
        "[method]output-stream.flush",
        "[method]output-stream.blocking-flush",
    ] {
        instance.func_wrap(flush, |_, (_,): (Resource<OutputStream>,)| {
            Ok((Ok::<(), StreamError>(()),))
        })?;
    }
    instance.func_wrap(
        "[method]output-stream.subscribe",
        |_, (_,): (Resource<OutputStream>,)| Ok((Resource::<Pollable>::new_own(0),)),
    )
}

fn random(
    instance: &mut LinkerInstance<'_, StoreData>,
    bytes_fn: &str,
    u64_fn: &str,
) -> Result<()> {
    instance.func_wrap(u64_fn, |mut store, (): ()| {
        Ok((store.data_mut().next_random(),))
    })?;
    instance.func_wrap(bytes_fn, |mut store, (len,): (u64,)| {
        // A policy has no business asking for megabytes of randomness.
        let len = usize::try_from(len.min(64 * 1024)).unwrap_or(0);
        let data = store.data_mut();
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            out.extend_from_slice(&data.next_random().to_le_bytes());
        }
        out.truncate(len);
        Ok((out,))
    })
}
