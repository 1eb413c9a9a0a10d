#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>

// writeprobe measures what a machine gives a real-time audio writer, with
// nothing of tutti in the way: a SCHED_FIFO thread writes a 3528-byte
// packet (20 ms of 44.1 kHz stereo, as tutti's pipe output) every 20 ms,
// 1500 times, waking ahead of each instant by the given ns (default
// 100000) and waiting the rest awake, to a SOCK_SEQPACKET socket whose
// reader has the kernel stamp each packet (SO_TIMESTAMPNS), as `tutti-bench
// bench sync` reads speakers. It prints how late the wake-ups were past the
// instant and how long from before the write to the kernel's stamp.
//
//   cc -O2 -o writeprobe scripts/writeprobe.c -lpthread && sudo ./writeprobe
#define N 1500 // packets
static int fds[2];
static long long before[N], stamp[N];
static long long rt_ns(void){struct timespec t;clock_gettime(CLOCK_REALTIME,&t);return t.tv_sec*1000000000LL+t.tv_nsec;}
static long long mono_ns(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1000000000LL+t.tv_nsec;}
static void *reader(void *a){
  char buf[65536]; char cb[256];
  for(int i=0;i<N;i++){
    struct iovec iov={buf,sizeof buf}; struct msghdr m={0}; m.msg_iov=&iov;m.msg_iovlen=1;m.msg_control=cb;m.msg_controllen=sizeof cb;
    if(recvmsg(fds[0],&m,0)<=0) break;
    for(struct cmsghdr*c=CMSG_FIRSTHDR(&m);c;c=CMSG_NXTHDR(&m,c)) if(c->cmsg_level==SOL_SOCKET&&c->cmsg_type==SCM_TIMESTAMPNS){struct timespec ts;memcpy(&ts,CMSG_DATA(c),sizeof ts);stamp[i]=ts.tv_sec*1000000000LL+ts.tv_nsec;}
  }
  return 0;
}
static int cmp(const void*a,const void*b){long long x=*(long long*)a,y=*(long long*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  int spin = argc>1 ? atoi(argv[1]) : 100000;
  socketpair(AF_UNIX,SOCK_SEQPACKET,0,fds); int one=1; setsockopt(fds[0],SOL_SOCKET,SO_TIMESTAMPNS,&one,sizeof one);
  pthread_t r; pthread_create(&r,0,reader,0);
  struct sched_param p={.sched_priority=10}; if(sched_setscheduler(0,SCHED_FIFO,&p)) perror("fifo");
  prctl(PR_SET_TIMERSLACK,1,0,0,0);
  char pkt[3528]; memset(pkt,1,sizeof pkt);
  long long t0=mono_ns()+20000000;
  long long late[N];
  for(int i=0;i<N;i++){
    long long due=t0+(long long)i*20000000, wake=due-spin;
    struct timespec ts={wake/1000000000,wake%1000000000}; clock_nanosleep(CLOCK_MONOTONIC,TIMER_ABSTIME,&ts,0);
    while(mono_ns()<due){}
    late[i]=mono_ns()-due;
    before[i]=rt_ns();
    write(fds[1],pkt,sizeof pkt);
  }
  pthread_join(r,0);
  long long d[N]; for(int i=0;i<N;i++) d[i]=stamp[i]-before[i];
  qsort(d,N,sizeof d[0],cmp); qsort(late,N,sizeof late[0],cmp);
  printf("write->stamp us: p50 %.1f p90 %.1f p99 %.1f max %.1f\n",d[N/2]/1e3,d[N*9/10]/1e3,d[N*99/100]/1e3,d[N-1]/1e3);
  printf("timer late  us: p50 %.1f p90 %.1f p99 %.1f max %.1f\n",late[N/2]/1e3,late[N*9/10]/1e3,late[N*99/100]/1e3,late[N-1]/1e3);
  return 0;
}
