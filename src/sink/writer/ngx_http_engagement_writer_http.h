
/*
 * The parser of the upstream's HTTP/1.1 answer to the durable writer
 * (writer_http.c): fed the bytes as they arrive, in pieces of any size; it
 * needs nginx's core only, and fuzz/fuzz_http.c builds it alone.
 */


#ifndef _NGX_HTTP_ENGAGEMENT_WRITER_HTTP_H_INCLUDED_
#define _NGX_HTTP_ENGAGEMENT_WRITER_HTTP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* the answer's head buffer: a longer head is an error */
#define NGX_HTTP_ENGAGEMENT_WRITER_HTTP_HEAD  4096
/* the first bytes of an answer's body kept: a check's answer */
#define NGX_HTTP_ENGAGEMENT_WRITER_ANSWER     32


/* how the answer's body ends */
typedef enum {
    NGX_HTTP_ENGAGEMENT_W_HEAD = 0,      /* the head is not complete yet */
    NGX_HTTP_ENGAGEMENT_W_LENGTH,
    NGX_HTTP_ENGAGEMENT_W_CHUNKED,
    NGX_HTTP_ENGAGEMENT_W_CLOSE
} ngx_http_engagement_writer_framing_e;


typedef struct {
    ngx_http_engagement_writer_framing_e  framing;
    ngx_uint_t                   cstate;      /* where in a chunked body */
    off_t                        rest;        /* of the body or the chunk */
    ngx_uint_t                   status;      /* 0 until the head is in */
    ngx_uint_t                   close;       /* the answer says: no reuse */
    ngx_uint_t                   extra;       /* bytes past its end came */
    off_t                        body;        /* the body's bytes so far */
    off_t                        end;         /* the bytes it took so far */
    const char                  *error;       /* why NGX_ERROR */
    u_char                      *body_start;  /* the body's bytes in head */
    size_t                       body_n;
    size_t                       ans_n;
    u_char                       ans[NGX_HTTP_ENGAGEMENT_WRITER_ANSWER];
    size_t                       head_n;
    size_t                       scan;        /* where the search goes on */
    /* last: a read past it leaves the structure */
    u_char                       head[NGX_HTTP_ENGAGEMENT_WRITER_HTTP_HEAD];
} ngx_http_engagement_writer_answer_t;


void ngx_http_engagement_writer_http_init(
    ngx_http_engagement_writer_answer_t *a);
ngx_int_t ngx_http_engagement_writer_http_parse(
    ngx_http_engagement_writer_answer_t *a, u_char *p, size_t n);
ngx_int_t ngx_http_engagement_writer_http_eof(
    ngx_http_engagement_writer_answer_t *a);


#endif /* _NGX_HTTP_ENGAGEMENT_WRITER_HTTP_H_INCLUDED_ */
