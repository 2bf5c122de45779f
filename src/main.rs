//! Command line (go-fastdfs compatible): `fastdfs [server]`, `fastdfs version`, with the
//! runtime dir taken from `--dir`, else env GO_FASTDFS_DIR, else the working directory.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "fastdfs", about = "fastdfs-rs: a go-fastdfs compatible file server", version = fastdfs::VERSION)]
struct Cli {
    /// Runtime directory (conf/, files/, data/, log/); default: $GO_FASTDFS_DIR or the current directory.
    #[arg(long, global = true)]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the file server (the default).
    Server,
    /// Print version information.
    Version,
    /// Print the cfg.json written on first start (with a fresh admin_key and this host).
    DefaultConfig,
    /// Verify files against their metadata (existence, size, digest); run with the server stopped.
    /// Exit code 0 when clean, 2 when problems were found.
    Check {
        /// Drop records of missing files, quarantine mismatching files, index unindexed files.
        #[arg(long)]
        repair: bool,
    },
    /// Compact small-file containers: rewrite every container with dead bytes (deleted merged
    /// files) and remove it; run with the server stopped (the server does it online).
    Compact,
    /// Import a go-fastdfs runtime dir from elsewhere: its files are copied into this runtime
    /// dir at the same paths (every old URL stays valid) and its metadata is indexed.
    Import {
        /// The go-fastdfs runtime dir (holding files/ and data/fileserver.db).
        #[arg(long)]
        from: PathBuf,
    },
}

fn runtime_dir(cli: &Cli) -> PathBuf {
    if let Some(d) = &cli.dir {
        return d.clone();
    }
    match std::env::var("GO_FASTDFS_DIR") {
        Ok(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from("."),
    }
}

/// Stops an offline command (`check`, `compact`) at once when `dir` is not a runtime dir a
/// server has run in, before anything (log/, conf/, the lock file) is created there.
fn require_runtime_dir(dir: &std::path::Path) {
    let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let shown = shown.display();
    if !dir.join("conf").join("cfg.json").is_file() {
        fail(&format!(
            "{shown} is not a fastdfs runtime dir (no conf/cfg.json): run it in the server's \
             directory, or set GO_FASTDFS_DIR"
        ));
    }
    if !dir.join("data").is_dir() {
        fail(&format!(
            "{shown} has no data/: the server has never run in this runtime dir, there is no \
             store to work on"
        ));
    }
}

/// One line on stderr and exit code 1 (before logging is set up).
fn fail(msg: &str) -> ! {
    eprintln!("fastdfs: {msg}");
    std::process::exit(1);
}

fn init_logging(dir: &std::path::Path) {
    use std::io::IsTerminal;
    use tracing_subscriber::{fmt, prelude::*, EnvFilter};
    let filter = EnvFilter::try_from_env("FASTDFS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = std::fs::create_dir_all(dir.join("log"));
    let file = fastdfs::logfile::LogFile::install(&dir.join("log").join("fileserver.log"));
    // Colour only on a terminal: journald, `> file` and pipes get plain text.
    let stderr_layer = fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(stderr_layer);
    match file {
        Ok(f) => {
            let file_layer = fmt::layer().with_ansi(false).with_writer(f);
            registry.with(file_layer).init();
        }
        Err(_) => registry.init(),
    }
}

fn import(dir: &std::path::Path, from: &std::path::Path) -> Result<(), String> {
    let loaded = fastdfs::config::load_or_create(dir).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir.join("data")).map_err(|e| e.to_string())?;
    let _lock = fastdfs::sys::lock_runtime_dir(dir)?;
    let cfg = loaded.config;
    let meta = fastdfs::store::meta::Meta::open(dir, cfg.shards, 1).map_err(|e| e.to_string())?;
    let report = fastdfs::store::import::import(from, dir, &meta, cfg.use_sha1(), &cfg.host)
        .map_err(|e| e.to_string())?;
    println!(
        "imported {} records from LevelDB and {} files without records ({} skipped)",
        report.from_leveldb, report.from_files, report.skipped
    );
    Ok(())
}

/// Runs the store check; Ok(true) when clean (or repaired).
fn check(dir: &std::path::Path, repair: bool) -> Result<bool, String> {
    let cfg = fastdfs::config::load_or_create(dir)
        .map_err(|e| e.to_string())?
        .config;
    let _lock = fastdfs::sys::lock_runtime_dir(dir)?;
    let meta = fastdfs::store::meta::Meta::open(dir, cfg.shards, 1).map_err(|e| e.to_string())?;
    let r = fastdfs::store::check::check(
        dir,
        &meta,
        cfg.use_sha1(),
        cfg.enable_distinct_file,
        &cfg.host,
        repair,
    )
    .map_err(|e| e.to_string())?;
    for p in &r.missing {
        println!("missing         {p}");
    }
    for p in &r.size_mismatch {
        println!("size mismatch   {p}");
    }
    for p in &r.digest_mismatch {
        println!("digest mismatch {p}");
    }
    println!(
        "checked {} files: {} ok, {} missing, {} size mismatch, {} digest mismatch",
        r.checked,
        r.ok,
        r.missing.len(),
        r.size_mismatch.len(),
        r.digest_mismatch.len()
    );
    if repair {
        println!(
            "repaired {} records, indexed {} unindexed files",
            r.repaired, r.indexed
        );
    }
    Ok(r.is_clean() || repair)
}

/// `fastdfs compact`: reclaims the dead bytes of small-file containers, server stopped.
fn compact(dir: &std::path::Path) {
    require_runtime_dir(dir);
    init_logging(dir);
    let cfg = match fastdfs::config::load_or_create(dir) {
        Ok(l) => l.config,
        Err(e) => {
            tracing::error!("{e}");
            std::process::exit(1);
        }
    };
    match fastdfs::compact::offline(dir, cfg) {
        Ok(r) => println!(
            "compacted {} containers: {} files ({} bytes) moved, {} bytes reclaimed",
            r.containers, r.files_moved, r.bytes_moved, r.bytes_reclaimed
        ),
        Err(e) => {
            tracing::error!("compaction failed: {e}");
            std::process::exit(1);
        }
    }
}

/// `fastdfs server` (the default): serves the runtime dir until stopped.
fn serve(dir: &std::path::Path) {
    if let Err(e) = std::fs::create_dir_all(dir.join("data")) {
        eprintln!("fastdfs: cannot create runtime dir {}: {e}", dir.display());
        std::process::exit(1);
    }
    // Before the log file is opened: a second server refused here must not write into
    // the running one's log.
    let lock = match fastdfs::sys::lock_runtime_dir(dir) {
        Ok(l) => l,
        Err(e) => fail(&e),
    };
    init_logging(dir);
    let loaded = match fastdfs::config::load_or_create(dir) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            std::process::exit(1);
        }
    };
    if loaded.created {
        tracing::info!(path = %dir.join("conf/cfg.json").display(), "wrote default configuration");
    }
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    if let Err(e) = fastdfs::server::run(dir, loaded.config, lock) {
        tracing::error!("{e}");
        std::process::exit(1);
    }
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Version) => {
            println!("Version   : fastdfs-rs {}", fastdfs::VERSION);
            println!("GO_VERSION: none (Rust)");
            println!("GIT_COMMIT: {}", fastdfs::GIT_COMMIT);
            println!("BUILD_TIME: {}", fastdfs::BUILD_TIME);
        }
        Some(Command::DefaultConfig) => print!("{}", fastdfs::config::default_file_text()),
        Some(Command::Check { repair }) => {
            let dir = runtime_dir(&cli);
            require_runtime_dir(&dir);
            init_logging(&dir);
            match check(&dir, repair) {
                Ok(true) => {}
                Ok(false) => std::process::exit(2),
                Err(e) => {
                    tracing::error!("check failed: {e}");
                    std::process::exit(1);
                }
            }
        }
        Some(Command::Compact) => compact(&runtime_dir(&cli)),
        Some(Command::Import { ref from }) => {
            let dir = runtime_dir(&cli);
            // Checked before anything is created in the target runtime dir.
            if let Err(e) = fastdfs::store::import::check_source(from) {
                fail(&format!("cannot import: {e}"));
            }
            init_logging(&dir);
            if let Err(e) = import(&dir, from) {
                tracing::error!("import failed: {e}");
                std::process::exit(1);
            }
        }
        Some(Command::Server) | None => serve(&runtime_dir(&cli)),
    }
}
