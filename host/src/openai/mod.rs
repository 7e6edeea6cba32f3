//! The OpenAI-compatible APIs as clients speak them (Chat Completions, embeddings,
//! Responses): reading their requests once, and answering errors in OpenAI's shape.

mod body;
mod error;
mod request;
mod response;
mod responses;

pub use body::{BodyError, JsonBody};
pub use error::{ApiError, codes};
pub use request::{ChatRequest, EmbeddingsRequest, parse_chat, parse_embeddings};
pub(crate) use request::{lenient, metadata, model_of, object};
pub use response::{ResponseBody, full, json};
pub use responses::{ResponsesRequest, parse_responses};
