//! The MCP servers the tool tests run: the reference `mcp-server-time`
//! (PyPI) and `mcp_test_server.py` (on the MCP Python SDK: hangs, crashes,
//! echoes, list changes), both in the venv `ops/test.sh` installs.

/// The venv interpreter (`$SWITCHBOARD_TEST_PYTHON`).
pub fn python() -> String {
    std::env::var("SWITCHBOARD_TEST_PYTHON").expect(
        "SWITCHBOARD_TEST_PYTHON is not set: run the tests with ops/test.sh, which installs the MCP servers",
    )
}

/// The reference time server, beside the interpreter.
pub fn server_time() -> String {
    std::path::Path::new(&python())
        .with_file_name("mcp-server-time")
        .display()
        .to_string()
}

/// The test server's script (`python SCRIPT` for stdio, `python SCRIPT
/// http PORT TOKEN` for Streamable HTTP).
pub fn test_server() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/mcp_test_server.py").to_string()
}
