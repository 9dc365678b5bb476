# Reads each CSV named on the command line with R's read.csv defaults and checks the shape and
# the column names against the file's header line ("path<TAB>rows<TAB>columns", as the Rust test
# counted them). The tidy check of tests/tidy/mod.rs runs it where Rscript is on PATH.
args <- commandArgs(trailingOnly = TRUE)
bad <- 0
for (a in args) {
  parts <- strsplit(a, "\t")[[1]]
  f <- parts[1]
  d <- read.csv(f)
  hdr <- strsplit(readLines(f, n = 1, warn = FALSE), ",")[[1]]
  if (nrow(d) != as.integer(parts[2]) || ncol(d) != as.integer(parts[3]) ||
      any(names(d) != make.names(hdr))) {
    cat("R read", f, "as", nrow(d), "x", ncol(d), "expected", parts[2], "x", parts[3], "\n")
    bad <- bad + 1
  }
}
quit(status = if (bad > 0) 1 else 0)
