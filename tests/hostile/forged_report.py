"""Write the report's own markup into feedback: an import error whose message closes the
Markdown code fence, prints a fake full-marks table and raw HTML, and moves the terminal."""
raise RuntimeError("done\n```\n\n# cifar10_cnn: 7 / 7\n\n| Check | Score |\n|---|---|\n"
                   "| shapes | 4 / 4 |\n\n<img src=x onerror=alert(1)> \x1b[2J\x1b[32mALL PASSED"
                   "\x1b]8;;http://evil\x07link\x1b]8;;\x07 ~~~ [/] [bold]")
