//! The reference's file of every default is the code's defaults: the docs cannot claim a
//! default the binaries do not have (the heartbeat was documented as 1 s while it was 250 ms).

use backflow::settings::Settings;

#[test]
fn the_file_of_every_default_in_docs_is_the_default_settings() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/configuration.md")).unwrap();
    let section = doc
        .split("## A file with every default")
        .nth(1)
        .expect("docs/configuration.md has a file of every default");
    let yaml = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a yaml block");
    let mut documented = Settings::parse(yaml, "docs".into(), Vec::<(String, String)>::new())
        .unwrap_or_else(|e| panic!("the documented defaults do not load: {e}"));
    // The only entries the file shows as examples, not defaults.
    documented.rate_coordinator.providers.clear();
    documented.agent.sources.clear();
    assert_eq!(documented, Settings::default());
}
