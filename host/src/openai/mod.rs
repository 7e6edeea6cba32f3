//! The OpenAI-compatible API as clients speak it: reading their requests once, and
//! answering errors in OpenAI's shape.

mod body;
mod error;
mod request;
mod response;

pub use body::{BodyError, JsonBody};
pub use error::{ApiError, codes};
pub use request::{ChatRequest, EmbeddingsRequest, parse_chat, parse_embeddings};
pub(crate) use request::{lenient, metadata, model_of, object};
pub use response::{ResponseBody, full, json};
