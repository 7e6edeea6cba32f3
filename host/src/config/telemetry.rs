//! Checking `[telemetry]`, whose endpoint the environment may replace.

use super::error::Invalid;
use super::location::KeyPath;
use super::{OTLP_ENDPOINT_ENV, TelemetrySection};

/// Checks `[telemetry]` once the environment's endpoint (`from_env`), if any, has taken
/// the place of the file's. `built_in` says whether this binary can export at all: a
/// file asking for export from a binary that cannot is a mistake worth stopping for.
/// A variable left in the environment for other programs is not, so without the
/// feature it is ignored here (start-up warns about it). When the endpoint came from
/// the variable, errors about it name the variable.
pub(super) fn validate_telemetry(
    mut section: TelemetrySection,
    from_env: Option<String>,
    built_in: bool,
) -> Result<TelemetrySection, Invalid> {
    let mut key = KeyPath::dotted("telemetry.otlp_endpoint");
    if !built_in {
        if section.otlp_endpoint.is_some() {
            return Err(Invalid::new(
                key,
                "this signalbox was built without OTLP export: rebuild with the `otlp` \
                 cargo feature (`cargo build --features otlp`), or remove the key",
            ));
        }
    } else if let Some(url) = from_env.filter(|url| !url.trim().is_empty()) {
        section.otlp_endpoint = Some(url);
        key = KeyPath::environment(OTLP_ENDPOINT_ENV);
    }
    if let Some(url) = &section.otlp_endpoint {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| Invalid::new(key.clone(), format!("`{url}` is not a URL: {e}")))?;
        let http_scheme = matches!(uri.scheme_str(), Some("http" | "https"));
        if !http_scheme || uri.authority().is_none() {
            return Err(Invalid::new(
                key,
                format!("`{url}` is not an http(s) URL of an OTLP/HTTP receiver"),
            ));
        }
        if uri.query().is_some() {
            return Err(Invalid::new(
                key,
                format!("`{url}` has a query; give the receiver's base URL"),
            ));
        }
    }
    if section.service_name.trim().is_empty() {
        return Err(Invalid::new(
            KeyPath::dotted("telemetry.service_name"),
            "must not be empty",
        ));
    }
    if !(0.0..=1.0).contains(&section.sample_ratio) {
        return Err(Invalid::new(
            KeyPath::dotted("telemetry.sample_ratio"),
            format!("{} is not in [0, 1]", section.sample_ratio),
        ));
    }
    Ok(section)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn telemetry(
        text: &str,
        from_env: Option<&str>,
        built_in: bool,
    ) -> Result<TelemetrySection, (String, String)> {
        let section: TelemetrySection = toml::from_str(text).unwrap();
        validate_telemetry(section, from_env.map(str::to_owned), built_in)
            .map_err(|e| (e.path.to_string(), e.message))
    }

    #[test]
    fn an_endpoint_without_the_otlp_feature_stops_start_up() {
        let (path, message) =
            telemetry("otlp_endpoint = \"http://127.0.0.1:4318\"", None, false).unwrap_err();
        assert_eq!(path, "telemetry.otlp_endpoint");
        assert!(message.contains("`otlp` cargo feature"), "{message}");
        assert!(message.contains("cargo build --features otlp"), "{message}");
        // A variable set for other programs does not stop a binary that cannot export.
        let section = telemetry("", Some("http://127.0.0.1:4318"), false).unwrap();
        assert_eq!(section.otlp_endpoint, None);
    }

    #[test]
    fn the_environment_endpoint_takes_the_files_place() {
        let text = "otlp_endpoint = \"http://file:4318\"\nservice_name = \"edge\"";
        let section = telemetry(text, Some("http://env:4318/"), true).unwrap();
        assert_eq!(
            section.traces_url().as_deref(),
            Some("http://env:4318/v1/traces")
        );
        assert_eq!(section.service_name, "edge");
        let section = telemetry(text, Some(""), true).unwrap();
        assert_eq!(
            section.traces_url().as_deref(),
            Some("http://file:4318/v1/traces")
        );
        let section = telemetry("", Some("https://c.example/v1/traces"), true).unwrap();
        assert_eq!(
            section.traces_url().as_deref(),
            Some("https://c.example/v1/traces")
        );
    }

    #[test]
    fn bad_telemetry_values_name_the_key_path() {
        let path = |text: &str, env: Option<&str>| telemetry(text, env, true).unwrap_err().0;
        assert_eq!(
            path("otlp_endpoint = \"127.0.0.1:4318\"", None),
            "telemetry.otlp_endpoint"
        );
        assert_eq!(
            path("otlp_endpoint = \"grpc://c:4317\"", None),
            "telemetry.otlp_endpoint"
        );
        assert_eq!(
            path("", Some("not a url")),
            "OTEL_EXPORTER_OTLP_ENDPOINT (environment)"
        );
        assert_eq!(path("sample_ratio = 1.5", None), "telemetry.sample_ratio");
        assert_eq!(path("sample_ratio = nan", None), "telemetry.sample_ratio");
        assert_eq!(path("service_name = \" \"", None), "telemetry.service_name");
    }
}
