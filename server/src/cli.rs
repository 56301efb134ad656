//! Command line: `server` (or `server serve`) runs the app; `server user create NAME` adds an account,
//! reading the password without echo (or one line from stdin with `--password-stdin`).

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "server", version, about = "Implementation-Eng server and admin tool")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the web server (the default).
    Serve,
    /// Create the database if needed and apply migrations, then exit.
    Migrate,
    /// Manage accounts.
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create an account. The password is asked for twice on the terminal, without echo.
    Create {
        username: String,
        /// Read the password from the first line of standard input instead (for scripts).
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Reads a new password: from stdin, or twice from the terminal without echo.
pub fn read_new_password(from_stdin: bool) -> Result<String, String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(|e| format!("could not read stdin: {e}"))?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_string());
    }
    let first = rpassword::prompt_password("Password: ").map_err(|e| format!("could not read password: {e}"))?;
    let second = rpassword::prompt_password("Repeat password: ").map_err(|e| format!("could not read password: {e}"))?;
    if first != second {
        return Err("the passwords do not match".into());
    }
    Ok(first)
}
