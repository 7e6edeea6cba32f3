//! Tool definitions and the tool choice, from OpenAI's shape to Anthropic's.

use serde_json::{Map, Value, json};

use super::{TranslateError, bad_request};

/// Adds `tools` and `tool_choice`. `tool_choice: "none"` drops both, because
/// with no tools offered Anthropic cannot call one.
pub(super) fn add_tools(
    req: &Map<String, Value>,
    out: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    let choice = req.get("tool_choice").filter(|v| !v.is_null());
    if choice.and_then(Value::as_str) == Some("none") {
        return Ok(());
    }
    let tools = match req.get("tools") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(tools)) if tools.is_empty() => return Ok(()),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(bad_request("`tools` must be an array")),
    };

    let mut mapped = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let kind = tool.get("type").and_then(Value::as_str);
        let function = tool.get("function");
        let name = function.and_then(|f| f.get("name")).and_then(Value::as_str);
        let (Some("function"), Some(name)) = (kind, name) else {
            return Err(bad_request(format!(
                "tools[{i}]: expected a function tool with `function.name`"
            )));
        };
        let mut entry = Map::new();
        entry.insert("name".into(), Value::from(name));
        if let Some(description) = function
            .and_then(|f| f.get("description"))
            .and_then(Value::as_str)
        {
            entry.insert("description".into(), Value::from(description));
        }
        let schema = function
            .and_then(|f| f.get("parameters"))
            .filter(|p| !p.is_null())
            .cloned()
            .unwrap_or_else(|| json!({ "type": "object" }));
        entry.insert("input_schema".into(), schema);
        mapped.push(Value::Object(entry));
    }
    out.insert("tools".into(), Value::Array(mapped));

    let mut choice = match choice {
        None => None,
        Some(Value::String(s)) if s == "auto" => Some(json!({ "type": "auto" })),
        Some(Value::String(s)) if s == "required" => Some(json!({ "type": "any" })),
        Some(Value::Object(obj)) => {
            let name = obj
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| bad_request("`tool_choice` object must name a function"))?;
            Some(json!({ "type": "tool", "name": name }))
        }
        Some(_) => return Err(bad_request("unsupported `tool_choice`")),
    };
    if req.get("parallel_tool_calls") == Some(&Value::Bool(false)) {
        let choice = choice.get_or_insert_with(|| json!({ "type": "auto" }));
        if let Some(obj) = choice.as_object_mut() {
            obj.insert("disable_parallel_tool_use".into(), Value::Bool(true));
        }
    }
    if let Some(choice) = choice {
        out.insert("tool_choice".into(), choice);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{TranslateError, to_messages_request};
    use serde_json::{Value, json};

    fn translate(body: Value) -> Value {
        to_messages_request(&body, "claude-test", 1024).unwrap()
    }

    fn with_tools(tool_choice: Value) -> Value {
        let mut body = json!({
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [
                {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "ping"}}
            ]
        });
        if !tool_choice.is_null() {
            body["tool_choice"] = tool_choice;
        }
        translate(body)
    }

    #[test]
    fn tools_are_mapped() {
        let out = with_tools(Value::Null);
        assert_eq!(
            out["tools"],
            json!([
                {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                {"name": "ping", "input_schema": {"type": "object"}}
            ])
        );
        assert!(out.get("tool_choice").is_none());
    }

    #[test]
    fn tool_choice_variants() {
        assert_eq!(
            with_tools(json!("auto"))["tool_choice"],
            json!({"type": "auto"})
        );
        assert_eq!(
            with_tools(json!("required"))["tool_choice"],
            json!({"type": "any"})
        );
        assert_eq!(
            with_tools(json!({"type": "function", "function": {"name": "ping"}}))["tool_choice"],
            json!({"type": "tool", "name": "ping"})
        );
        let none = with_tools(json!("none"));
        assert!(none.get("tools").is_none());
        assert!(none.get("tool_choice").is_none());
        assert!(matches!(
            to_messages_request(
                &json!({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "x"}}], "tool_choice": "sometimes"}),
                "m",
                1
            ),
            Err(TranslateError::InvalidRequest(_))
        ));
    }

    #[test]
    fn parallel_tool_calls_false_disables_parallel_use() {
        let out = translate(json!({
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "x"}}],
            "parallel_tool_calls": false
        }));
        assert_eq!(
            out["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
    }
}
