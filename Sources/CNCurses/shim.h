#ifndef FLEETWATCH_CNCURSES_SHIM_H
#define FLEETWATCH_CNCURSES_SHIM_H
/* SwiftPM drops ncursesw's pkg-config cflags, so ask for the wide-character API here. */
#define _XOPEN_SOURCE_EXTENDED 1
#define NCURSES_WIDECHAR 1
#include <locale.h>
#include <langinfo.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <ncursesw/curses.h>

/* Swift 6 rejects these mutable C globals and cannot import the attribute macros. */
static inline WINDOW *fw_stdscr(void) { return stdscr; }
static inline int fw_cols(void) { return COLS; }
static inline int fw_lines(void) { return LINES; }
static inline attr_t fw_a_bold(void) { return A_BOLD; }
static inline attr_t fw_a_reverse(void) { return A_REVERSE; }
static inline attr_t fw_a_dim(void) { return A_DIM; }
static inline attr_t fw_a_underline(void) { return A_UNDERLINE; }
static inline attr_t fw_color_pair(short n) { return COLOR_PAIR(n); }

/* The FleetTUI screen adapter's calls, as functions (ncurses defines several as macros). */
static inline int fw_attr_set(attr_t attrs, short pair) { return wattr_set(stdscr, attrs, pair, NULL); }
static inline int fw_mvaddnwstr(int y, int x, const wchar_t *s, int n) { return mvwaddnwstr(stdscr, y, x, s, n); }
static inline int fw_move(int y, int x) { return wmove(stdscr, y, x); }
static inline int fw_get_wch(wint_t *ch) { return wget_wch(stdscr, ch); }
static inline int fw_noutrefresh(void) { return wnoutrefresh(stdscr); }
static inline int fw_clearok(int on) { return clearok(stdscr, on ? TRUE : FALSE); }
static inline int fw_keypad(int on) { return keypad(stdscr, on ? TRUE : FALSE); }
static inline int fw_nodelay(int on) { return nodelay(stdscr, on ? TRUE : FALSE); }

/* Whether the locale's character set is UTF-8 (decides line drawing vs ASCII). */
static inline int fw_codeset_is_utf8(void) {
    const char *cs = nl_langinfo(CODESET);
    return cs && (cs[0] == 'U' || cs[0] == 'u') && (cs[1] == 'T' || cs[1] == 't') && (cs[2] == 'F' || cs[2] == 'f');
}

/* Reads the terminal size from the tty and resizes ncurses to it (after SIGWINCH; the TUI
   installs its own SIGWINCH handler, which writes to a pipe, so ncurses' handler is not used). */
static inline int fw_resize_from_tty(int fd) {
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0 || ws.ws_col == 0) return -1;
    return resizeterm(ws.ws_row, ws.ws_col);
}

/* A string capability of the current terminal, or NULL (tigetstr returns (char *)-1 for
   "not a string capability"). */
static inline const char *fw_tigetstr(const char *name) {
    char *s = tigetstr(name);
    return (s == (char *)-1) ? NULL : s;
}
#endif
