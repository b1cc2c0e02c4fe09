//! placeholder
#[derive(clap::Args, Clone)]
pub struct CompareArgs {
    #[arg(trailing_var_arg = true, required = true)]
    cmd: Vec<String>,
}
pub fn main(_a: CompareArgs, _out: &std::path::Path) -> std::process::ExitCode { std::process::ExitCode::FAILURE }
